# Turns the console's static files into C arrays (no tool beyond CMake:
# the build needs no network and no xxd). Called with -DOUT=... -DCSS=... -DJS=...
function(embed var path out)
  file(READ "${path}" hex HEX)
  string(LENGTH "${hex}" n)
  math(EXPR bytes "${n} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
  file(APPEND "${out}" "const unsigned char ${var}[] = {${arr}0x00};\nconst size_t ${var}_len = ${bytes};\n")
endfunction()
file(WRITE "${OUT}" "/* Generated from producer/cli/web/static by embed.cmake: do not edit. */\n#include <stddef.h>\n")
embed(web_asset_css "${CSS}" "${OUT}")
embed(web_asset_js "${JS}" "${OUT}")
