# Turns the console's page files into a C array so omsctl serves them from
# the binary: nothing fetched or found at run time.
# Inputs: OUT (C file), FILES ('|'-separated).
string(REPLACE "|" ";" FILES "${FILES}")
set(body "#include \"console.h\"\n")
set(entries "")
set(i 0)
foreach(f IN LISTS FILES)
  file(READ "${f}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  get_filename_component(name "${f}" NAME)
  string(APPEND body "static const char asset_${i}[] = {${bytes}0x00};\n")
  string(APPEND entries "    {\"${name}\", asset_${i}, sizeof asset_${i} - 1},\n")
  math(EXPR i "${i}+1")
endforeach()
string(APPEND body "const console_asset CONSOLE_ASSETS[] = {\n${entries}    {0, 0, 0},\n};\n")
file(WRITE "${OUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
