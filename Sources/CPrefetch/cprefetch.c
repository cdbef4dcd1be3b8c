// SwiftPM needs one source file per C target; everything is `static inline` in the header.
#include "cprefetch.h"
