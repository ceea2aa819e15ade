# install_consumer: installs this build into a scratch prefix, then configures, builds and
# runs tests/consumer against it with find_package(spillway).
add_test(NAME install_consumer
         COMMAND ${CMAKE_COMMAND}
           -DBUILD_DIR=${PROJECT_BINARY_DIR}
           -DSOURCE_DIR=${PROJECT_SOURCE_DIR}/tests/consumer
           -DWORK_DIR=${PROJECT_BINARY_DIR}/consumer_test
           -DCUDA_ARCHS=${CMAKE_CUDA_ARCHITECTURES}
           -P ${CMAKE_CURRENT_LIST_DIR}/run_consumer.cmake)
set_tests_properties(install_consumer PROPERTIES LABELS cpu TIMEOUT 600
                     PASS_REGULAR_EXPRESSION "consumer ok")
