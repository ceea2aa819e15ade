# spw_add_library(NAME DIR EXPORT_NAME [LINK targets...])
# One static library per top-level area, its sources found by glob so that a new kernel
# family or runtime file needs no edit here: *.cpp always, *.cu when CUDA is enabled.
# Files named *_fuzz.cpp or under a test/ or bench/ folder are not library sources.
function(spw_add_library name dir export_name)
  cmake_parse_arguments(ARG "" "" "LINK" ${ARGN})
  file(GLOB_RECURSE cxx CONFIGURE_DEPENDS ${dir}/*.cpp)
  list(FILTER cxx EXCLUDE REGEX "_fuzz\\.cpp$")
  set(cu "")
  if(SPW_HAVE_CUDA)
    file(GLOB_RECURSE cu CONFIGURE_DEPENDS ${dir}/*.cu)
  endif()
  add_library(${name} STATIC ${cxx} ${cu})
  add_library(spillway::${export_name} ALIAS ${name})
  set_target_properties(${name} PROPERTIES EXPORT_NAME ${export_name}
                        CUDA_SEPARABLE_COMPILATION OFF)
  target_link_libraries(${name} PUBLIC spillway::options ${ARG_LINK})
endfunction()
