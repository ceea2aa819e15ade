// Drafter is an interface; this file anchors the library until the drafters land.
#include "decode/drafter.h"
