//! Guessing the language of a document, to pick its stemmer.
//!
//! A stop-word vote: the folded words of the text are looked up in short lists of the most
//! frequent function words of each language the detector knows (`DETECTED`); the language
//! with the most hits wins when it has at least `MIN_HITS` and clearly more than the
//! runner-up (`MARGIN`), else the answer is "none" (index the folded words unstemmed).
//! Cyrillic and Greek text is recognised by script first. Only the first `MAX_WORDS`
//! words are read: the vote is settled long before that, and a huge body costs nothing.
//!
//! The lists are short on purpose (they must not include words shared by two languages
//! of the list, such as "de" or "a"), so the detector is cheap and its errors are only
//! "none" for short or mixed texts, never a wild guess.

use unicode_segmentation::UnicodeSegmentation;

use super::tokenize::fold;

/// The languages `detect` can answer, besides "none".
pub const DETECTED: &[&str] = &["en", "de", "fr", "es", "it", "nl", "pt", "sv", "ru", "el"];

const MAX_WORDS: usize = 2000;
const MIN_HITS: usize = 3;
const MARGIN: f64 = 1.5;

const STOP: &[(&str, &[&str])] = &[
    ("en", &["the", "and", "of", "to", "is", "that", "for", "with", "you", "this", "are", "was", "have", "not", "be", "it", "on", "at", "by", "from", "your", "will", "or", "we"]),
    ("de", &["der", "die", "und", "das", "ist", "nicht", "mit", "den", "sie", "ich", "auf", "fur", "ein", "eine", "dem", "auch", "sich", "wir", "zu", "von", "wird", "bei", "oder", "werden"]),
    ("fr", &["le", "la", "les", "et", "des", "est", "pour", "que", "une", "dans", "qui", "pas", "sur", "vous", "nous", "avec", "du", "au", "sont", "ce", "il", "ne", "mais", "aux"]),
    ("es", &["el", "los", "las", "y", "del", "que", "por", "una", "para", "con", "es", "se", "su", "al", "lo", "como", "mas", "pero", "sus", "le", "ya", "muy", "esta", "usted"]),
    ("it", &["il", "di", "che", "e", "gli", "della", "per", "una", "sono", "non", "con", "del", "alla", "nel", "questo", "anche", "ma", "piu", "come", "ci", "lei", "dei", "delle", "essere"]),
    ("nl", &["het", "een", "van", "en", "niet", "dat", "zijn", "op", "te", "voor", "met", "ik", "je", "ook", "maar", "bij", "wordt", "naar", "dit", "deze", "uit", "wij", "heeft", "worden"]),
    ("pt", &["o", "os", "da", "do", "das", "dos", "que", "nao", "uma", "com", "para", "em", "um", "voce", "mais", "foi", "ao", "pelo", "pela", "isso", "seu", "sua", "tem", "muito"]),
    ("sv", &["och", "att", "det", "som", "en", "pa", "ar", "av", "med", "inte", "jag", "har", "till", "den", "for", "om", "vi", "kan", "var", "du", "ett", "sig", "hade", "eller"]),
];

/// The ISO 639-1 code of the language of `text`, or "none".
pub fn detect(text: &str) -> &'static str {
    let mut hits = [0usize; 8];
    let (mut cyrillic, mut greek, mut letters) = (0usize, 0usize, 0usize);
    for word in text.unicode_words().take(MAX_WORDS) {
        for ch in word.chars().filter(|c| c.is_alphabetic()).take(4) {
            letters += 1;
            match ch as u32 {
                0x0400..=0x04FF => cyrillic += 1,
                0x0370..=0x03FF | 0x1F00..=0x1FFF => greek += 1,
                _ => {}
            }
        }
        let folded = fold(word);
        for (i, (_, words)) in STOP.iter().enumerate() {
            if words.contains(&folded.as_str()) {
                hits[i] += 1;
            }
        }
    }
    if letters > 0 && cyrillic * 2 > letters {
        return "ru";
    }
    if letters > 0 && greek * 2 > letters {
        return "el";
    }
    let mut order: Vec<usize> = (0..STOP.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(hits[i]));
    let (best, second) = (hits[order[0]], hits[order[1]]);
    if best >= MIN_HITS && best as f64 >= second as f64 * MARGIN {
        STOP[order[0]].0
    } else {
        "none"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_common_languages() {
        assert_eq!(detect("The meeting is moved to Friday, and the report will be sent with the notes."), "en");
        assert_eq!(detect("Die Sitzung ist auf Freitag verschoben, und der Bericht wird mit den Notizen geschickt."), "de");
        assert_eq!(detect("La réunion est déplacée à vendredi et le rapport sera envoyé avec les notes pour vous."), "fr");
        assert_eq!(detect("La reunión se mueve al viernes y el informe se enviará con las notas para usted."), "es");
        assert_eq!(detect("De vergadering is verplaatst naar vrijdag en het verslag wordt met de notities gestuurd."), "nl");
        assert_eq!(detect("Встреча перенесена на пятницу, отчёт будет отправлен"), "ru");
    }

    #[test]
    fn short_or_unknown_text_is_none() {
        assert_eq!(detect(""), "none");
        assert_eq!(detect("Hi"), "none");
        assert_eq!(detect("12345 67890"), "none");
    }

    #[test]
    fn detected_languages_have_stemmers() {
        for code in DETECTED {
            assert!(super::super::tokenize::stemmer(code).unwrap().is_some(), "{code}");
        }
    }
}
