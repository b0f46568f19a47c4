//! Text chunks of a PNG file, read by hand (signature, chunk length/type/CRC): ComfyUI
//! stores the workflow that made an image in `tEXt` chunks named `workflow` (UI format) and
//! `prompt` (API format).

/// The eight bytes every PNG file starts with.
pub(crate) const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// One text chunk of a PNG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TextChunk {
    /// The keyword (`workflow`, `prompt`, `parameters`, …).
    pub keyword: String,
    /// The text, when it could be read.
    pub text: Result<String, String>,
}

/// What the chunk walk found.
#[derive(Debug, Default)]
pub(crate) struct PngText {
    /// The text chunks, in file order.
    pub chunks: Vec<TextChunk>,
    /// Set when the file ended (or broke) before `IEND`; what was read before is kept.
    pub damage: Option<String>,
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// The CRC-32 that PNG chunks carry (over the chunk type and data).
pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for part in parts {
        for &b in *part {
            c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
    }
    c ^ 0xFFFF_FFFF
}

/// Whether the bytes start with the PNG signature.
pub(crate) fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(&PNG_SIGNATURE)
}

/// Latin-1 as the PNG spec says for `tEXt`; tools that wrote UTF-8 anyway are read as UTF-8.
fn text_latin1_or_utf8(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn split_nul(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// `tEXt`: keyword, NUL, text.
fn read_text(data: &[u8]) -> Option<TextChunk> {
    let (keyword, text) = split_nul(data)?;
    Some(TextChunk {
        keyword: text_latin1_or_utf8(keyword),
        text: Ok(text_latin1_or_utf8(text)),
    })
}

/// `iTXt`: keyword, NUL, compression flag, compression method, language tag, NUL,
/// translated keyword, NUL, UTF-8 text. Compressed text is not read (no inflate here).
fn read_itext(data: &[u8]) -> Option<TextChunk> {
    let (keyword, rest) = split_nul(data)?;
    let keyword = text_latin1_or_utf8(keyword);
    let (&flag, rest) = rest.split_first()?;
    let (_method, rest) = rest.split_first()?;
    let (_language, rest) = split_nul(rest)?;
    let (_translated, text) = split_nul(rest)?;
    let text = if flag != 0 {
        Err("it is compressed (iTXt with compression), which comfydeck does not read".to_string())
    } else {
        std::str::from_utf8(text)
            .map(str::to_string)
            .map_err(|_| "its text is not valid UTF-8".to_string())
    };
    Some(TextChunk { keyword, text })
}

/// `zTXt`: keyword, NUL, method, zlib data; only the keyword is reported.
fn read_ztext(data: &[u8]) -> Option<TextChunk> {
    let (keyword, _) = split_nul(data)?;
    Some(TextChunk {
        keyword: text_latin1_or_utf8(keyword),
        text: Err("it is compressed (zTXt), which comfydeck does not read".to_string()),
    })
}

/// Walks the chunks of a PNG and returns its text chunks. The caller has checked the
/// signature. CRCs are checked on the text chunks (a damaged one is reported, not read).
pub(crate) fn text_chunks(bytes: &[u8]) -> PngText {
    let mut out = PngText::default();
    let mut at = PNG_SIGNATURE.len();
    loop {
        if at == bytes.len() {
            out.damage = Some("the file ends before the IEND chunk".into());
            return out;
        }
        let Some(header) = bytes.get(at..at + 8) else {
            out.damage = Some(format!("the chunk at byte {at} is truncated"));
            return out;
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        let kind_name = String::from_utf8_lossy(&kind).into_owned();
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            out.damage = Some(format!("byte {at} does not start a valid chunk"));
            return out;
        }
        let data_start = at + 8;
        let Some(data_end) = data_start.checked_add(length) else {
            out.damage = Some(format!("chunk {kind_name} has an impossible length"));
            return out;
        };
        let Some(crc_bytes) = data_end
            .checked_add(4)
            .and_then(|end| bytes.get(data_end..end))
        else {
            out.damage = Some(format!(
                "chunk {kind_name} says it is {length} bytes long but the file ends first"
            ));
            return out;
        };
        let data = &bytes[data_start..data_end];
        match &kind {
            b"IEND" => return out,
            b"tEXt" | b"iTXt" | b"zTXt" => {
                let stored =
                    u32::from_be_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
                let chunk = if crc32(&[&kind, data]) != stored {
                    split_nul(data).map(|(keyword, _)| TextChunk {
                        keyword: text_latin1_or_utf8(keyword),
                        text: Err(format!("its {kind_name} chunk is damaged (bad CRC)")),
                    })
                } else {
                    match &kind {
                        b"tEXt" => read_text(data),
                        b"iTXt" => read_itext(data),
                        _ => read_ztext(data),
                    }
                };
                if let Some(chunk) = chunk {
                    out.chunks.push(chunk);
                }
            }
            _ => {}
        }
        at = data_end + 4;
    }
}

/// A PNG file's size and text chunks, read by [`read_head`].
#[derive(Debug)]
pub(crate) struct PngHead {
    pub width: u32,
    pub height: u32,
    pub text: PngText,
}

/// Text chunks larger than this are skipped (a workflow is a few hundred KB at most).
const MAX_TEXT_CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// Reads the header and the text chunks of a PNG file, seeking past the image data: the
/// gallery indexes thousands of multi-megabyte outputs, often on a network volume. The kept
/// chunks are handed to [`text_chunks`], so damage is judged the same way as for a whole
/// file. `None` when the file is not a PNG.
pub(crate) fn read_head(
    file: &mut (impl std::io::Read + std::io::Seek),
) -> std::io::Result<Option<PngHead>> {
    use std::io::{ErrorKind, SeekFrom};
    let mut signature = [0u8; 8];
    match file.read_exact(&mut signature) {
        Ok(()) if is_png(&signature) => {}
        Ok(()) => return Ok(None),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut kept = PNG_SIGNATURE.to_vec();
    let (mut width, mut height) = (0, 0);
    loop {
        let mut header = [0u8; 8];
        match file.read_exact(&mut header) {
            Ok(()) => {}
            // The walker reports the missing IEND.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let wanted = matches!(kind, b"IHDR" | b"tEXt" | b"iTXt" | b"zTXt" | b"IEND");
        if !kind.iter().all(u8::is_ascii_alphabetic) || (wanted && length > MAX_TEXT_CHUNK_BYTES) {
            kept.extend_from_slice(&header);
            break;
        }
        if !wanted {
            file.seek(SeekFrom::Current(length as i64 + 4))?;
            continue;
        }
        let mut body = vec![0u8; length + 4];
        let mut read = 0;
        while read < body.len() {
            match file.read(&mut body[read..])? {
                0 => break,
                n => read += n,
            }
        }
        body.truncate(read);
        if kind == b"IHDR" && body.len() >= 8 {
            width = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            height = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        }
        let end = kind == b"IEND";
        kept.extend_from_slice(&header);
        kept.extend_from_slice(&body);
        if end || read < length + 4 {
            break;
        }
    }
    Ok(Some(PngHead {
        width,
        height,
        text: text_chunks(&kept),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
        out
    }

    #[test]
    fn crc_of_iend_is_the_known_value() {
        assert_eq!(crc32(&[b"IEND"]), 0xAE42_6082);
    }

    #[test]
    fn reads_text_and_uncompressed_itext() {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend(chunk(b"tEXt", b"prompt\0{\"a\":1}"));
        png.extend(chunk(b"iTXt", b"workflow\0\0\0en\0\0{\"\xc3\xa9\":2}"));
        png.extend(chunk(b"iTXt", b"other\0\x01\0\0\0xyz"));
        png.extend(chunk(b"IEND", b""));
        let found = text_chunks(&png);
        assert!(found.damage.is_none());
        assert_eq!(found.chunks.len(), 3);
        assert_eq!(found.chunks[0].keyword, "prompt");
        assert_eq!(found.chunks[0].text.as_deref(), Ok("{\"a\":1}"));
        assert_eq!(found.chunks[1].text.as_deref(), Ok("{\"é\":2}"));
        assert!(found.chunks[2].text.is_err());
    }

    #[test]
    fn read_head_keeps_text_and_size_and_skips_image_data() {
        let mut png = PNG_SIGNATURE.to_vec();
        let mut ihdr = 640u32.to_be_bytes().to_vec();
        ihdr.extend(480u32.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(b"IDAT", &[7u8; 5000]));
        png.extend(chunk(b"tEXt", b"prompt\0{\"a\":1}"));
        png.extend(chunk(b"IEND", b""));
        let head = read_head(&mut std::io::Cursor::new(&png)).unwrap().unwrap();
        assert_eq!((head.width, head.height), (640, 480));
        assert!(head.text.damage.is_none(), "{:?}", head.text.damage);
        assert_eq!(head.text.chunks.len(), 1);
        assert_eq!(head.text.chunks[0].text.as_deref(), Ok("{\"a\":1}"));
        let cut = &png[..png.len() - 20];
        let head = read_head(&mut std::io::Cursor::new(cut)).unwrap().unwrap();
        assert!(head.text.damage.is_some());
        assert!(read_head(&mut std::io::Cursor::new(b"GIF89a.."))
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_crc_and_truncation_are_reported() {
        let mut png = PNG_SIGNATURE.to_vec();
        let mut bad = chunk(b"tEXt", b"workflow\0{}");
        let last = bad.len() - 1;
        bad[last] ^= 0xFF;
        png.extend(bad);
        png.extend(&chunk(b"tEXt", b"prompt\0{}")[..10]);
        let found = text_chunks(&png);
        assert!(found.chunks[0].text.as_ref().unwrap_err().contains("CRC"));
        assert!(found.damage.unwrap().contains("ends first"));
    }
}
