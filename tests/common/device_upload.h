// Uploads of a case's host data in the GPU test files: never an empty buffer (a case with no
// data still passes the kernels a valid pointer), floats stored as the element type T.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common/device_buffer.h"
#include "tests/common/helpers.h"

namespace spw::test {

template <typename T>
DeviceBuffer<T> upload_nonempty(const std::vector<float>& v) {
  return DeviceBuffer<T>(to_storage<T>(v.empty() ? std::vector<float>{0.f} : v));
}

inline DeviceBuffer<int32_t> upload_ints(const std::vector<int32_t>& v) {
  return DeviceBuffer<int32_t>(v.empty() ? std::vector<int32_t>{0} : v);
}

}  // namespace spw::test
