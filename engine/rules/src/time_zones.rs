//! A person's time zone as wagate guesses it from their number's calling code, for rules in
//! local time (quiet hours): the country's most populous zone's standard offset, no daylight
//! saving. A caller who knows better names the person's own offset with the send.

use crate::ids::Msisdn;

/// Calling code (as digits) and its standard UTC offset in minutes; the longest code that
/// begins a number wins (1 is the North American plan, 1-2xx its islands are left to it).
const OFFSETS: &[(u32, i16)] = &[
    (1, -300),
    (7, 180),
    (20, 120),
    (27, 120),
    (30, 120),
    (31, 60),
    (32, 60),
    (33, 60),
    (34, 60),
    (36, 60),
    (39, 60),
    (40, 120),
    (41, 60),
    (43, 60),
    (44, 0),
    (45, 60),
    (46, 60),
    (47, 60),
    (48, 60),
    (49, 60),
    (51, -300),
    (52, -360),
    (53, -300),
    (54, -180),
    (55, -180),
    (56, -240),
    (57, -300),
    (58, -240),
    (60, 480),
    (61, 600),
    (62, 420),
    (63, 480),
    (64, 720),
    (65, 480),
    (66, 420),
    (81, 540),
    (82, 540),
    (84, 420),
    (86, 480),
    (90, 180),
    (91, 330),
    (92, 300),
    (93, 270),
    (94, 330),
    (95, 390),
    (98, 210),
    (212, 60),
    (213, 60),
    (216, 60),
    (233, 0),
    (234, 60),
    (254, 180),
    (255, 180),
    (256, 180),
    (351, 0),
    (353, 0),
    (358, 120),
    (380, 120),
    (420, 60),
    (852, 480),
    (880, 360),
    (886, 480),
    (966, 180),
    (971, 240),
    (972, 120),
    (974, 180),
    (977, 345),
];

/// The standard UTC offset (minutes) of the zone `person`'s calling code suggests; 0 when the
/// code is not in the table.
pub fn utc_offset_minutes(person: Msisdn) -> i16 {
    let digits = person.digits().to_string();
    (1..=3)
        .rev()
        .filter_map(|len| digits.get(..len)?.parse::<u32>().ok())
        .find_map(|code| {
            OFFSETS
                .binary_search_by_key(&code, |(c, _)| *c)
                .ok()
                .map(|at| OFFSETS[at].1)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_calling_code_names_the_zone() {
        let offset = |number: &str| utc_offset_minutes(Msisdn::parse(number).unwrap());
        assert!(
            OFFSETS.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, once each"
        );
        assert_eq!(offset("+16505551234"), -300);
        assert_eq!(offset("+919876543210"), 330);
        assert_eq!(offset("+971501234567"), 240);
        assert_eq!(offset("+79161234567"), 180);
        assert_eq!(offset("+9779812345678"), 345);
        assert_eq!(offset("+2991234567"), 0, "not in the table");
    }
}
