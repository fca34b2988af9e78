/* Module linked with zlib's static archive: compress and uncompress. */
#include <stdio.h>
#include <string.h>
#include <zlib.h>

int zlib_describe(char *out, size_t len)
{
	static unsigned char text[20000], packed[30000], unpacked[20000];
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (unsigned char)("execmem modules "[i % 16] + (i / 997) % 3);
	uLongf packed_len = sizeof(packed), unpacked_len = sizeof(unpacked);
	if (compress2(packed, &packed_len, text, sizeof(text), 9) != Z_OK)
		return snprintf(out, len, "compress failed");
	if (uncompress(unpacked, &unpacked_len, packed, packed_len) != Z_OK)
		return snprintf(out, len, "uncompress failed");
	return snprintf(out, len, "zlib %s: %lu -> %lu bytes, crc %08lx, adler %08lx, %s",
			zlibVersion(), (unsigned long)sizeof(text), (unsigned long)packed_len,
			crc32(0, packed, (uInt)packed_len), adler32(1, text, sizeof(text)),
			unpacked_len == sizeof(text) && !memcmp(unpacked, text, sizeof(text))
				? "round trip ok" : "round trip broken");
}
