# rq_forbid(TARGET LIB...): TARGET's sources may not include LIB's headers.
#
# The system include path holds every library's headers, so scoping our
# own include directories cannot stop `#include <curl/curl.h>` in the mail
# core. cmake/forbid/LIB/ holds headers of the same names that stop the
# build with #error; they come first on TARGET's include path only
# (PRIVATE), so a part that may use LIB still finds the real one.
# LIB: curl, uv, hiredis, msgpack.
function(rq_forbid target)
  foreach(lib ${ARGN})
    target_include_directories(${target} BEFORE PRIVATE ${PROJECT_SOURCE_DIR}/cmake/forbid/${lib})
  endforeach()
endfunction()
