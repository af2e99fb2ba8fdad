# Turns files into a C array of {name, bytes[, length]} entries, so a binary
# carries what it serves or applies: nothing to mount or find at run time
# (containers, systemd, tests). Used for each service's SQL migrations
# (pg_migration, lib/pg.h) and for omsctl console's page (console_asset,
# cli/console.h).
# Inputs: OUT (C file), HEADER (declares TYPE), TYPE, SYMBOL (array name),
# FILES ('|'-separated, in order), WITH_LENGTH (ON: entries carry the length).
string(REPLACE "|" ";" FILES "${FILES}")
set(body "#include \"${HEADER}\"\n")
set(entries "")
set(i 0)
foreach(f IN LISTS FILES)
  file(READ "${f}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  get_filename_component(name "${f}" NAME)
  string(APPEND body "static const char file_${i}[] = {${bytes}0x00};\n")
  if(WITH_LENGTH)
    string(APPEND entries "    {\"${name}\", file_${i}, sizeof file_${i} - 1},\n")
  else()
    string(APPEND entries "    {\"${name}\", file_${i}},\n")
  endif()
  math(EXPR i "${i}+1")
endforeach()
if(WITH_LENGTH)
  set(last "{0, 0, 0}")
else()
  set(last "{0, 0}")
endif()
string(APPEND body "const ${TYPE} ${SYMBOL}[] = {\n${entries}    ${last},\n};\n")
file(WRITE "${OUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
