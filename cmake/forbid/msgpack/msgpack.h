/* A part that may not use msgpack-c includes this in place of the real header
 * (cmake/forbid.cmake): docs/architecture.md says which parts may. */
#error "msgpack-c is not for this part: see docs/architecture.md"
