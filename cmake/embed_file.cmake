# embed_file.cmake - writes a C file holding the bytes of a text file, so a
# document (docs/api/openapi.yaml) is built into a binary.
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed_file.cmake
# defines: const char NAME[] (NUL-terminated) and const size_t NAME_len.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
  "/* Generated from ${IN} by cmake/embed_file.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "const char ${NAME}[] = {\n${bytes}0x00 };\n"
  "const size_t ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
