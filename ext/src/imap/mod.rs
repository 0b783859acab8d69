//! The IMAP command parser (RFC 9051 IMAP4rev2 with the IMAP4rev1 forms and extensions the
//! server announces), incremental and sans-IO.
//!
//! This is the native twin of the pure-Python reference `stalwart/protocols/imap/
//! grammar_ref.py`: same events, same values, same error messages, checked by the
//! differential tests in `tests/protocol/test_imap_grammar_native.py`.
//!
//! - `framer`: bytes in, events out; lines, literals (`{n}`, `{n+}`, `~{n}`), modes (IDLE,
//!   AUTHENTICATE), limits (line, command, literal, discard).
//! - `cursor`: tokens of one complete command; `commands`: one function per command.
//! - `mutf7`: modified UTF-7 mailbox names (RFC 3501 5.1.3).
//! - `value`: the produced values (mirrors `types.py`); `chars`: character classes and the
//!   Python-style `repr` of error messages.
//!
//! Nothing here depends on Python: the charset conversions of SEARCH CHARSET and the
//! per-command literal limit come from the `Host` and `LiteralLimit` the caller passes.

pub mod chars;
pub mod commands;
pub mod cursor;
pub mod framer;
pub mod mutf7;
pub mod value;

pub use commands::{parse_command, tag_and_name};
pub use cursor::{Host, PlainHost};
pub use framer::{LiteralLimit, Limits, Mode, Parser, Stop};
pub use value::*;

/// The default literal limits (`max_append` for APPEND, `max_literal` otherwise).
pub struct DefaultLimit;

impl LiteralLimit for DefaultLimit {
    fn literal_limit(&mut self, _name: &str) -> Result<Option<i64>, ()> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
