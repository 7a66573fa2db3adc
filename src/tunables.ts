/**
 * Tunables: the fixed sizes, timeouts, intervals and caps the program uses
 * that are not settings (src/config/schema.ts holds those). One place, so a
 * reader sees every such number at once and a change is made here only.
 * Limits that RingCentral or a standard sets (cover text length, cover page
 * numbers, upload size) live with the fax domain (src/fax/).
 */

/** A message's header section is read up to this many bytes; a longer one counts as no usable headers. */
export const MAX_HEADER_BYTES = 256 * 1024;
