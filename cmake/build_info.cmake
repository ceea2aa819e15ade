# Script mode (cmake -DSRC=... -DOUT=... -DVERSION=... -DDETAILS=... -P build_info.cmake), run at
# every build of the `spillway` CLI: writes OUT, the record `spillway --version` prints, and
# touches it only when its text changes (so an unchanged tree relinks nothing).
# The commit: `git rev-parse HEAD` of SRC, with "+dirty" when tracked files differ from it; where
# SRC is no git checkout (the GPU machine's copy), the one in SRC/.carry/commit.txt
# (tools/gpu/prepare_carry.sh); else "unknown".
set(commit "")
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS "${SRC}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SRC}" rev-parse HEAD RESULT_VARIABLE rc
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND commit)
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SRC}" diff --quiet HEAD -- RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      string(APPEND commit "+dirty")
    endif()
  else()
    set(commit "")
  endif()
endif()
if(NOT commit AND EXISTS "${SRC}/.carry/commit.txt")
  file(READ "${SRC}/.carry/commit.txt" commit)  # "<sha>\n" or "<sha>\n+dirty\n"
  string(REGEX REPLACE "[ \t\r\n]" "" commit "${commit}")
endif()
if(NOT commit MATCHES "^[0-9a-f]+(\\+dirty)?$")
  set(commit "unknown")
endif()
set(text "// Generated at build time by cmake/build_info.cmake: what `spillway --version` prints.
namespace spw::cli {
extern const char* const kBuildVersion = \"${VERSION}\";
extern const char* const kBuildCommit = \"${commit}\";
extern const char* const kBuildDetails = \"${DETAILS}\";
}  // namespace spw::cli
")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
