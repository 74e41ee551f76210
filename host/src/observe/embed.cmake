# Writes OUT, a C++ file defining `std::string_view SYMBOL()` (in namespace
# jobhost::observe) that returns the bytes of IN. Run at build time
# (cmake -DIN=... -DOUT=... -DSYMBOL=... -P embed.cmake): files served by the
# daemon are built into the binary, no network, no install step.
file(READ "${IN}" content HEX)
string(LENGTH "${content}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${content}")
file(WRITE "${OUT}" "// Generated from ${IN} by embed.cmake: do not edit.\n"
  "#include <string_view>\n"
  "namespace jobhost::observe {\n"
  "namespace { constexpr char kBytes[] = {${bytes} 0}; }\n"
  "std::string_view ${SYMBOL}() { return {kBytes, ${size}}; }\n"
  "}  // namespace jobhost::observe\n")
