// libjpeg-turbo's TurboJPEG API: returns error codes (no setjmp needed from Swift).
#include <turbojpeg.h>
