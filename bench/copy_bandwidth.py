"""Copy bandwidth: the device-to-device copy that every other benchmark is measured against.

Cases: buffer sizes from 64 MiB to 2 GiB. Impls: `cuda_memcpy` (torch copy_, i.e.
cudaMemcpyAsync device-to-device) and `torch_clone_add` is not timed on purpose: the copy is
the ceiling, not a competitor. Bytes = read + written."""
import harness  # (before torch: it says what to do when PyTorch is missing)
import torch


def main() -> None:
    b = harness.Bench("copy_bandwidth")
    sizes_mib = [64, 256, 1024] if b.quick else [64, 128, 256, 512, 1024, 2048]
    for mib in sizes_mib:
        n = mib << 20
        if not b.case(f"copy_{mib}mib", {"bytes": n}):
            continue
        sets = b.rotation_count(n, max_sets=4)
        srcs = [torch.empty(n, dtype=torch.uint8, device="cuda").random_() for _ in range(sets)]
        dst = torch.empty(n, dtype=torch.uint8, device="cuda")
        b.time("cuda_memcpy", lambda i: dst.copy_(srcs[i % sets]), bytes=2 * n)
        del srcs, dst
    b.write()


if __name__ == "__main__":
    main()
