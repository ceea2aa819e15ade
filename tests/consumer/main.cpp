// Uses the installed headers and libraries: a kernel-common helper, the error type and the
// family list. Prints "consumer ok" when everything links and behaves.
#include <cstdio>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "kernels/common/families.h"
#include "kernels/common/softmax_state.h"

int main() {
  float w[2];
  float lses[2] = {0.f, 0.f};
  float lse = spw::lse_merge_weights(lses, 2, w);
  bool ok = spw::kernel_families().size() >= 4 && w[0] == 0.5f && lse > 0.69f && lse < 0.70f &&
            spw::round_to(spw::DType::f16, 1.0f) == 1.0f;
  try {
    spw::fail("probe {}", 1);
  } catch (const spw::Error& e) {
    ok = ok && std::string(e.what()) == "probe 1";
  }
  std::printf(ok ? "consumer ok\n" : "consumer FAILED\n");
  return ok ? 0 : 1;
}
