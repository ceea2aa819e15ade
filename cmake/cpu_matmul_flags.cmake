# spw_cpu_matmul_flags(DIR): the per-file compile flags of the CPU matrix product in DIR
# (runtime/cpu_matmul.h): one translation unit per x86 instruction set, compiled with that
# set's flags and picked at run time from the CPU's features. No contraction of a*b+c into
# FMAs beyond the explicit ones (batch-invariant rounding); dequant.cpp shares the
# dequantisation loops (runtime/dequant_kernels.h), so it gets the same no-contraction rule.
# Source properties belong to the directory that makes the target: call it there.
function(spw_cpu_matmul_flags dir)
  set(all ${dir}/cpu_matmul.cpp ${dir}/cpu_matmul_avx2.cpp ${dir}/cpu_matmul_avx512.cpp ${dir}/dequant.cpp)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    set_property(SOURCE ${all} APPEND PROPERTY COMPILE_OPTIONS -ffp-contract=off)
  endif()
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    set_property(SOURCE ${dir}/cpu_matmul_avx512.cpp APPEND PROPERTY COMPILE_OPTIONS -mavx512f -mavx2 -mfma -mf16c)
    set_property(SOURCE ${dir}/cpu_matmul_avx2.cpp APPEND PROPERTY COMPILE_OPTIONS -mavx2 -mfma -mf16c)
    set_property(SOURCE ${dir}/cpu_matmul.cpp ${dir}/cpu_matmul_avx2.cpp ${dir}/cpu_matmul_avx512.cpp APPEND
                 PROPERTY COMPILE_DEFINITIONS SPW_CPU_MATMUL_AVX512 SPW_CPU_MATMUL_AVX2)
  endif()
endfunction()
