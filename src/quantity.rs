//! Kubernetes quantities (`500m`, `2`, `1Gi`, `1e3`): one exact reading for
//! every stage that asks what a quantity is worth or whether two are equal.
//! A plan that promises exactness cannot decide `1024Mi == 1Gi` with float
//! tolerances. Pure.

/// A quantity's value as a whole mantissa times a power of ten, kept with
/// no trailing zeros in the mantissa, so that equal values are equal
/// structs: `2000m`, `2` and `2e0` are all `(2, 0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    mantissa: i128,
    exponent: i32,
}

/// Why a text is no [`Amount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAmount {
    /// Not a quantity at all.
    #[error("not a quantity (a number with an optional suffix, such as 500m, 2 or 1Gi)")]
    Syntax,
    /// A quantity, but with more significant digits than 128 bits hold.
    #[error("a quantity with more significant digits than can be held exactly")]
    TooManyDigits,
}

impl Amount {
    pub const ZERO: Amount = Amount {
        mantissa: 0,
        exponent: 0,
    };

    /// Reads a quantity as the API server does: a signed decimal number,
    /// then a decimal (`n u m k M G T P E`), binary (`Ki`..`Ei`) or
    /// exponent (`e3`, `E-2`) suffix.
    pub fn parse(text: &str) -> Result<Amount, NotAmount> {
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let (negative, digits) = match number.as_bytes().first() {
            Some(b'-') => (true, &number[1..]),
            Some(b'+') => (false, &number[1..]),
            Some(_) => (false, number),
            None => return Err(NotAmount::Syntax),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit());
        if whole.is_empty() && fraction.is_empty() || !all_digits {
            return Err(NotAmount::Syntax);
        }
        let (binary_power, decimal_exponent): (u32, i32) = match suffix {
            "" => (0, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            "Ki" => (1, 0),
            "Mi" => (2, 0),
            "Gi" => (3, 0),
            "Ti" => (4, 0),
            "Pi" => (5, 0),
            "Ei" => (6, 0),
            exponent if exponent.starts_with(['e', 'E']) => {
                (0, exponent[1..].parse().map_err(|_| NotAmount::Syntax)?)
            }
            _ => return Err(NotAmount::Syntax),
        };
        let fraction_places =
            i32::try_from(fraction.len()).map_err(|_| NotAmount::TooManyDigits)?;
        let digits = format!("{whole}{fraction}");
        let significant = digits.trim_end_matches('0');
        let trailing_zeros = i32::try_from(digits.len() - significant.len())
            .map_err(|_| NotAmount::TooManyDigits)?;
        let significant = significant.trim_start_matches('0');
        if significant.is_empty() {
            return Ok(Amount::ZERO);
        }
        // Only ASCII digits are left, so a failed parse is an overflow.
        let mut mantissa: i128 = significant.parse().map_err(|_| NotAmount::TooManyDigits)?;
        if binary_power > 0 {
            mantissa = 1024_i128
                .checked_pow(binary_power)
                .and_then(|factor| mantissa.checked_mul(factor))
                .ok_or(NotAmount::TooManyDigits)?;
        }
        let exponent = decimal_exponent
            .checked_sub(fraction_places)
            .and_then(|e| e.checked_add(trailing_zeros))
            .ok_or(NotAmount::TooManyDigits)?;
        let sign = if negative { -1 } else { 1 };
        Ok(Amount::normalized(sign * mantissa, exponent))
    }

    fn normalized(mut mantissa: i128, mut exponent: i32) -> Amount {
        if mantissa == 0 {
            return Amount::ZERO;
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        Amount { mantissa, exponent }
    }

    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// The value as a float, for sums and ratios (what fits on a node, a
    /// request against its limit); never for deciding equality.
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exponent)
    }

    /// The value as a whole number (of bytes, of messages): `Err` when it is
    /// negative, has a fraction, or does not fit.
    pub fn whole(self) -> Result<u128, NotWhole> {
        if self.is_negative() {
            return Err(NotWhole::Negative);
        }
        // Normalised: a negative exponent means a fraction is left.
        let Ok(exponent) = u32::try_from(self.exponent) else {
            return Err(NotWhole::Fraction);
        };
        10u128
            .checked_pow(exponent)
            .and_then(|power| power.checked_mul(self.mantissa as u128))
            .ok_or(NotWhole::TooLarge)
    }
}

/// The finest a ResourceList value (requests, limits, a quota) is kept:
/// the API server rounds each up to a thousandth when it stores it (core
/// v1's defaulting of every ResourceList).
pub const RESOURCE_LIST_EXPONENT: i32 = -3;

impl Amount {
    /// The value rounded away from zero to a multiple of 10^`exponent`, as
    /// the API server rounds a ResourceList value ([`RESOURCE_LIST_EXPONENT`]).
    pub fn round_up(self, exponent: i32) -> Amount {
        if self.exponent >= exponent {
            return self;
        }
        let shift = u32::try_from(exponent - self.exponent).unwrap_or(u32::MAX);
        let magnitude = match 10i128.checked_pow(shift) {
            // Finer than the mantissa can be: less than one unit, so one.
            None => 1,
            Some(unit) => self.mantissa.unsigned_abs().div_ceil(unit.unsigned_abs()) as i128,
        };
        Amount::normalized(self.mantissa.signum() * magnitude, exponent)
    }
}

/// Why a text is no ResourceList value (a request, a limit) that the API
/// server stores exactly as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotKept {
    #[error(transparent)]
    NotAmount(#[from] NotAmount),
    #[error("is negative")]
    Negative,
    /// The server would round it up to a thousandth.
    #[error(
        "is finer than the API server keeps: it rounds requests and limits up to a thousandth (1m)"
    )]
    TooFine,
    /// The server would clamp it to `i64::MAX` (a binary suffix) or keep
    /// a value no node or quota comes near.
    #[error("is larger than the API server keeps ({})", i64::MAX)]
    TooLarge,
}

/// A ResourceList value (a request, a limit), refused unless the API
/// server stores it exactly as written: it rounds values up to a
/// thousandth ([`RESOURCE_LIST_EXPONENT`]) and clamps binary-suffixed ones
/// at `i64::MAX`.
pub fn resource_list_value(text: &str) -> Result<Amount, NotKept> {
    let amount = Amount::parse(text)?;
    if amount.is_negative() {
        return Err(NotKept::Negative);
    }
    if amount.round_up(RESOURCE_LIST_EXPONENT) != amount {
        return Err(NotKept::TooFine);
    }
    if amount.above_i64_max() {
        return Err(NotKept::TooLarge);
    }
    Ok(amount)
}

impl Amount {
    /// Whether the value is more than `i64::MAX`.
    fn above_i64_max(self) -> bool {
        let max = i128::from(i64::MAX);
        match u32::try_from(self.exponent) {
            Ok(exponent) => 10i128
                .checked_pow(exponent)
                .and_then(|power| power.checked_mul(self.mantissa))
                .is_none_or(|value| value > max),
            Err(_) => {
                let Some(unit) = 10i128.checked_pow(self.exponent.unsigned_abs()) else {
                    return false; // less than one
                };
                let (whole, fraction) = (self.mantissa / unit, self.mantissa % unit);
                whole > max || whole == max && fraction > 0
            }
        }
    }
}

/// Why an [`Amount`] is no whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotWhole {
    #[error("negative")]
    Negative,
    #[error("a fraction")]
    Fraction,
    #[error("larger than 128 bits hold")]
    TooLarge,
}

/// Where a value sits in an object: its key and its parent's (a list's
/// items sit where the list does), enough to know a quantity field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Place<'a> {
    pub parent: Option<&'a str>,
    pub key: Option<&'a str>,
}

impl<'a> Place<'a> {
    pub fn child(self, key: &'a str) -> Place<'a> {
        Place {
            parent: self.key,
            key: Some(key),
        }
    }

    /// The quantities fleet renders, which the API server may store
    /// spelt otherwise: resource requests and limits, an emptyDir's
    /// sizeLimit, an autoscaler's metric target.
    pub fn holds_quantity(self) -> bool {
        matches!(
            (self.parent, self.key),
            (Some("requests" | "limits"), _)
                | (_, Some("sizeLimit"))
                | (Some("target"), Some("averageValue" | "value"))
        )
    }
}

/// Whether two texts are the same quantity (`2000m` and `2`, `1024Mi` and
/// `1Gi`), exactly; texts that are no quantity are the same only as text.
pub fn same(a: &str, b: &str) -> bool {
    a == b || matches!((Amount::parse(a), Amount::parse(b)), (Ok(a), Ok(b)) if a == b)
}

/// The value of a quantity that is not negative, as a float (see
/// [`Amount::to_f64`]); `None` for what is not one.
pub fn value(text: &str) -> Option<f64> {
    Amount::parse(text)
        .ok()
        .filter(|amount| !amount.is_negative())
        .map(Amount::to_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_are_equal_however_written() {
        for (a, b) in [
            ("2000m", "2"),
            ("1024Mi", "1Gi"),
            ("0.5", "500m"),
            ("1e3", "1k"),
            ("1E3", "1000"),
            ("+1.50", "1500m"),
            ("100n", "0.1u"),
            ("0", "0.000Gi"),
            ("1.5Ki", "1536"),
        ] {
            assert!(same(a, b), "{a} == {b}");
        }
        for (a, b) in [
            ("1G", "1Gi"),
            ("1", "1.000000001"),
            ("-1", "1"),
            ("1E", "1e"),
        ] {
            assert!(!same(a, b), "{a} != {b}");
        }
        assert!(same("lots", "lots") && !same("lots", "many"));
    }

    #[test]
    fn rounding_up_to_a_thousandth_as_the_api_server_stores_resource_lists() {
        let rounded = |text: &str| {
            Amount::parse(text)
                .unwrap()
                .round_up(RESOURCE_LIST_EXPONENT)
        };
        let amount = |text: &str| Amount::parse(text).unwrap();
        for (text, stored) in [
            ("0.1n", "1m"),
            ("1.0000000001", "1001m"),
            ("1e-9", "1e-3"),
            ("12e-3", "12m"),
            ("1500u", "2m"),
            ("2", "2"),
            ("1Gi", "1Gi"),
            ("0", "0"),
            ("-0.5m", "-1m"),
        ] {
            assert_eq!(
                rounded(text),
                amount(stored),
                "{text} is stored as {stored}"
            );
        }
        let tiny = Amount::parse(&format!("0.{}1", "0".repeat(60))).unwrap();
        assert_eq!(tiny.round_up(RESOURCE_LIST_EXPONENT), amount("1m"));
    }

    #[test]
    fn a_resource_list_value_is_what_the_api_server_keeps_exactly() {
        // 1E is 10^18, below i64::MAX; 8Ei is 2^63, above.
        for text in [
            "500m",
            "2",
            "1Gi",
            "7Ei",
            "1E",
            "9223372036854775807",
            "1.5k",
            "0",
        ] {
            assert!(resource_list_value(text).is_ok(), "{text}");
        }
        for (text, why) in [
            ("0.5m", NotKept::TooFine),
            ("1e-9", NotKept::TooFine),
            ("8Ei", NotKept::TooLarge),
            ("9223372036854775808", NotKept::TooLarge),
            ("9223372036854775807.5", NotKept::TooLarge),
            ("-1", NotKept::Negative),
            ("lots", NotKept::NotAmount(NotAmount::Syntax)),
        ] {
            assert_eq!(resource_list_value(text), Err(why), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_quantity_is_refused() {
        for text in ["", "lots", "1GB", ".", "-", "1.2.3", "1e", "1ki", " 1"] {
            assert_eq!(Amount::parse(text), Err(NotAmount::Syntax), "{text:?}");
        }
        assert_eq!(
            Amount::parse(&format!("{}Ei", "9".repeat(42))),
            Err(NotAmount::TooManyDigits)
        );
    }

    #[test]
    fn values_and_whole_numbers() {
        assert_eq!(value("500m"), Some(0.5));
        assert_eq!(value("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(value("10G"), Some(1e10));
        assert_eq!(value("-1"), None);
        let whole = |text: &str| Amount::parse(text).unwrap().whole();
        assert_eq!(whole("1.5Ki"), Ok(1536));
        assert_eq!(whole("8000m"), Ok(8));
        assert_eq!(whole("8Ei"), Ok(1 << 63));
        assert_eq!(whole("500m"), Err(NotWhole::Fraction));
        assert_eq!(whole("-1"), Err(NotWhole::Negative));
        assert_eq!(whole("1e40"), Err(NotWhole::TooLarge));
    }
}
