/*
 * libFuzzer target for imap_utf7. Properties checked on every input:
 * - whatever encodes, encodes to printable ASCII and decodes back to the
 *   same bytes;
 * - whatever decodes, decodes to valid UTF-8 and encodes back to exactly
 *   the input (the decoder accepts only the canonical form).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_utf7.h"
#include "jsonutil.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in, *enc, *dec, *again;
	size_t i;

	/* The API takes C strings: the input up to its first NUL. */
	in = xstrndup((const char *)data, size);

	if ((enc = imap_utf8_to_utf7(in)) != NULL) {
		for (i = 0; enc[i] != '\0'; i++) {
			if (enc[i] < 0x20 || enc[i] > 0x7e)
				abort();
		}
		if (!utf8_valid(in, strlen(in)))
			abort();
		dec = imap_utf7_to_utf8(enc);
		if (dec == NULL || strcmp(dec, in) != 0)
			abort();
		free(dec);
		free(enc);
	}

	if ((dec = imap_utf7_to_utf8(in)) != NULL) {
		if (!utf8_valid(dec, strlen(dec)))
			abort();
		again = imap_utf8_to_utf7(dec);
		if (again == NULL || strcmp(again, in) != 0)
			abort();
		free(again);
		free(dec);
	}

	free(in);
	return 0;
}
