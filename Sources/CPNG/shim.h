// libpng 1.6; the simplified API (png_image_*) reports errors without longjmp.
#include <png.h>
