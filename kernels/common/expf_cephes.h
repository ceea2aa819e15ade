// Cephes' expf, the constants: e^x = 2^n e^r with n = round(x log2 e), r = x - n ln 2 (ln 2 in
// two parts, the first exact in n ln2_hi, so r is exact to float rounding) and
// e^r = 1 + r + r^2 (p0 r^5 + p1 r^4 + p2 r^3 + p3 r^2 + p4 r + p5) for |r| <= ln 2 / 2.
// Written once here for the host exps that evaluate it: exp_nonpositive (host_math.h, scalar
// code the compiler vectorises: sampling's vocabulary rows) and the CPU backend's exp on each
// instruction set's vector type (runtime/cpu_softmax_isa.h: attention's softmax, SiLU).
// Constants only, no functions: files compiled for other instruction sets include it too.
#pragma once

namespace spw::expf_cephes {
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;  // ln 2 = kLn2Hi - kLn2Lo
inline constexpr float kLn2Lo = 2.12194440e-4f;
inline constexpr float kPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                   4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace spw::expf_cephes
