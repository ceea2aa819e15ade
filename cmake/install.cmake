# Install rules and the exported CMake package: another project does
#   find_package(spillway REQUIRED)
#   target_link_libraries(app PRIVATE spillway::decode)   # or ::runtime, ::kernels
include(CMakePackageConfigHelpers)

install(TARGETS spillway_options spillway_kernels spillway_runtime spillway_decode
        EXPORT spillwayTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(area kernels runtime decode)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${area}/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/spillway/${area}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
endforeach()
install(EXPORT spillwayTargets NAMESPACE spillway::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/spillway)

set(SPW_CONFIG_HAVE_CUDA ${SPW_HAVE_CUDA})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/spillwayConfig.cmake.in
  ${PROJECT_BINARY_DIR}/spillwayConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/spillway)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/spillwayConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/spillwayConfig.cmake ${PROJECT_BINARY_DIR}/spillwayConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/spillway)
