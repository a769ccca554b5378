# rq_forbid(TARGET WHAT...): TARGET's sources may not include WHAT's headers.
#
# The system include path holds every library's headers, so scoping our
# own include directories cannot stop `#include <curl/curl.h>` in the mail
# core. cmake/forbid/LIB/ holds headers of the same names that stop the
# build with #error; they come first on TARGET's include path only
# (PRIVATE), so a part that may use LIB still finds the real one.
# WHAT: curl, uv, hiredis, msgpack (libraries), or transports: the
# headers of worker/net and of the parts built on it (worker/config,
# producer/cli/net), for a part that must not reach a mail server (the
# CLI core). A part that does not link them would not find those headers
# anyway; the stand-ins make the error say why.
function(rq_forbid target)
  foreach(what ${ARGN})
    if(what STREQUAL "transports")
      rq_forbid_transports_dir(dir)
      target_include_directories(${target} BEFORE PRIVATE ${dir})
    else()
      target_include_directories(${target} BEFORE PRIVATE ${PROJECT_SOURCE_DIR}/cmake/forbid/${what})
    endif()
  endforeach()
endfunction()

# Writes (when changed) a stand-in for every header of the transports and
# the parts above them into the build tree; the folder's path into OUT.
function(rq_forbid_transports_dir out)
  set(dir ${PROJECT_BINARY_DIR}/forbid/transports)
  file(GLOB headers CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/worker/net/*.h ${PROJECT_SOURCE_DIR}/worker/config/*.h
    ${PROJECT_SOURCE_DIR}/producer/cli/net/*.h)
  foreach(h ${headers})
    get_filename_component(name ${h} NAME)
    file(CONFIGURE OUTPUT ${dir}/${name} CONTENT
      "/* A part that may not reach mail servers includes this in place of ${name}\n * (cmake/forbid.cmake). */\n#error \"${name} is the transports' (or built on them), not for this part: see docs/architecture.md\"\n")
  endforeach()
  set(${out} ${dir} PARENT_SCOPE)
endfunction()
