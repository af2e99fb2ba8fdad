# Turns a list of SQL migration files into a C array so a service binary carries
# its own schema: nothing to mount or find at run time (containers, systemd, tests).
# Inputs: OUT (C file), SYMBOL (array name), FILES ('|'-separated, applied in order).
string(REPLACE "|" ";" FILES "${FILES}")
set(body "#include \"pg.h\"\n")
set(entries "")
set(i 0)
foreach(f IN LISTS FILES)
  file(READ "${f}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  get_filename_component(name "${f}" NAME)
  string(APPEND body "static const char sql_${i}[] = {${bytes}0x00};\n")
  string(APPEND entries "  {\"${name}\", sql_${i}},\n")
  math(EXPR i "${i}+1")
endforeach()
string(APPEND body "const pg_migration ${SYMBOL}[] = {\n${entries}  {0, 0}\n};\n")
file(WRITE "${OUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
