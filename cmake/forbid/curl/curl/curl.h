/* A part that may not use libcurl includes this in place of the real header
 * (cmake/forbid.cmake): docs/architecture.md says which parts may. */
#error "libcurl is not for this part: see docs/architecture.md"
