// Model is an interface; backends live in cpu_backend.cpp / cuda_backend.cu.
#include "runtime/model.h"
