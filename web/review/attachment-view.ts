/**
 * Viewing a document sent inline with a PAS request (FHIR R4 Attachment `data`, base64; PAS carries attachments
 * inline) in the reviewer's browser, beside the download. Only types a browser shows without running anything are
 * opened: plain text (shown as text, never parsed as HTML), PDF and the three raster image types. HTML, SVG, XML and
 * anything else may carry script, so they stay download-only, whatever the bytes are.
 * https://hl7.org/fhir/R4/datatypes.html#Attachment
 */

/** The content types a reviewer can open in the browser, and nothing else. */
export const VIEWABLE_TYPES = ['text/plain', 'application/pdf', 'image/png', 'image/jpeg', 'image/gif'] as const;
export type ViewableType = (typeof VIEWABLE_TYPES)[number];

/** An inline attachment as the reviewer API gives it (src/pas/review-case.ts `ReviewAttachment`). */
export interface InlineAttachment {
  title: string;
  contentType?: string;
  data?: string;
}

/** The text preview shows at most this much; the whole document opens in its own tab. */
export const TEXT_PREVIEW_CHARS = 20_000;

/** `text/plain; charset=ISO-8859-1` → `text/plain`: the media type alone, lower-cased, when it is one a reviewer may open. */
export function viewableType(contentType: string | undefined): ViewableType | undefined {
  const base = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return VIEWABLE_TYPES.find((t) => t === base);
}

/** The charset a text attachment declares (RFC 2046 §4.1.2), when the browser can decode it; else UTF-8. */
function charsetOf(contentType: string | undefined): string {
  const m = /;\s*charset\s*=\s*"?([A-Za-z0-9._:-]+)"?/i.exec(contentType ?? '');
  if (!m) return 'utf-8';
  try {
    return new TextDecoder(m[1]).encoding;
  } catch {
    return 'utf-8';
  }
}

/** The bytes of base64 `data`; undefined when it is not base64. */
export function attachmentBytes(data: string): Uint8Array<ArrayBuffer> | undefined {
  try {
    const binary = atob(data.replace(/\s+/g, ''));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return undefined;
  }
}

/** A text attachment's words, decoded in its charset; undefined for any other type. */
export function attachmentText(a: InlineAttachment): string | undefined {
  if (viewableType(a.contentType) !== 'text/plain' || a.data === undefined) return undefined;
  const bytes = attachmentBytes(a.data);
  return bytes ? new TextDecoder(charsetOf(a.contentType)).decode(bytes) : undefined;
}

/**
 * The attachment as a Blob of its viewable type (never the type as sent: "text/plain;x" stays text), to open in a new
 * tab; undefined when the type is not one a reviewer may open or the data is not base64.
 */
export function attachmentBlob(a: InlineAttachment): Blob | undefined {
  const type = viewableType(a.contentType);
  if (!type || a.data === undefined) return undefined;
  const bytes = attachmentBytes(a.data);
  if (!bytes) return undefined;
  return new Blob([bytes], { type: type === 'text/plain' ? `text/plain;charset=${charsetOf(a.contentType)}` : type });
}

/** A `data:` URL an `<img>` may show (the page's CSP allows `img-src data:`), for the three image types only. */
export function imageSource(a: InlineAttachment): string | undefined {
  const type = viewableType(a.contentType);
  if (!type?.startsWith('image/') || a.data === undefined || !attachmentBytes(a.data)) return undefined;
  return `data:${type};base64,${a.data.replace(/\s+/g, '')}`;
}
