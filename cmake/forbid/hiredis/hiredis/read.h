/* A part that may not use hiredis includes this in place of the real header
 * (cmake/forbid.cmake): docs/architecture.md says which parts may. */
#error "hiredis is not for this part: see docs/architecture.md"
