//! The seeded generator of the project's default data, `data/customers.csv`: customers'
//! demographics, browsing and purchase history, and whether their next session ended in a
//! purchase, drawn from a noisy, non-linear process that no single-column rule captures.

use crate::rng::Rng;

/// Seed of the committed `data/customers.csv`.
pub const DEFAULT_SEED: u64 = 20_261_126;
/// Rows of the committed `data/customers.csv`.
pub const DEFAULT_ROWS: usize = 6_000;

const REGIONS: [(&str, f64, f64); 5] = [
    ("north", 0.24, 0.10),
    ("south", 0.22, -0.15),
    ("east", 0.20, 0.0),
    ("west", 0.20, 0.20),
    ("central", 0.14, -0.25),
];
const DEVICES: [(&str, f64, f64); 3] = [("desktop", 0.46, 0.25), ("mobile", 0.44, -0.35), ("tablet", 0.10, 0.0)];

/// The CSV header of generated data.
pub const HEADER: &str = "customer_id,age,region,device,sessions_30d,pages_viewed,time_on_site_min,past_purchases,spending,newsletter,purchased";

fn pick<'a>(rng: &mut Rng, table: &'a [(&'a str, f64, f64)]) -> (&'a str, f64) {
    let u = rng.uniform();
    let mut acc = 0.0;
    for &(name, p, effect) in table {
        acc += p;
        if u < acc {
            return (name, effect);
        }
    }
    let (name, _, effect) = table[table.len() - 1];
    (name, effect)
}

fn poisson(rng: &mut Rng, mean: f64) -> u64 {
    // Knuth's method is exact and fast for the small means drawn here.
    let limit = (-mean.min(60.0)).exp();
    let mut k = 0;
    let mut p = rng.uniform();
    while p > limit {
        k += 1;
        p *= rng.uniform();
    }
    k
}

/// Writes `rows` customers drawn with `seed` as CSV (header included, LF line ends).
pub fn customers_csv(rows: usize, seed: u64) -> String {
    let mut out = Vec::with_capacity(rows * 80);
    write_customers(&mut out, rows, seed).expect("writing to memory does not fail");
    String::from_utf8(out).expect("the generator writes UTF-8")
}

/// [`customers_csv`] written to `out` row by row, so that a file of any size is generated in
/// flat memory: the same bytes.
pub fn write_customers(out: &mut impl std::io::Write, rows: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    writeln!(out, "{HEADER}")?;
    for id in 1..=rows {
        // An unobserved taste for shopping drives both browsing and buying.
        let engagement = rng.normal();
        let age = (38.0 + 12.0 * rng.normal()).round().clamp(18.0, 80.0);
        let (region, region_effect) = pick(&mut rng, &REGIONS);
        let (device, device_effect) = pick(&mut rng, &DEVICES);
        let sessions = poisson(&mut rng, (1.3 + 0.45 * engagement).exp()).min(60);
        let pages = if sessions == 0 {
            poisson(&mut rng, 2.0)
        } else {
            (sessions as f64 * (1.6 + 0.3 * engagement + 0.4 * rng.normal()).exp()).round() as u64
        };
        let minutes_per_page = (-0.1 + 0.5 * rng.normal()).exp() * if device == "mobile" { 0.7 } else { 1.0 };
        let time_on_site = pages as f64 * minutes_per_page;
        let past_purchases = poisson(&mut rng, (-0.3 + 0.6 * engagement + 0.012 * (age - 38.0)).exp()).min(80);
        let spending = if past_purchases == 0 {
            if rng.chance(0.1) {
                5.0 + 30.0 * rng.uniform()
            } else {
                0.0
            }
        } else {
            (0..past_purchases).map(|_| (3.4 + 0.6 * rng.normal()).exp()).sum::<f64>()
        };
        let newsletter = rng.chance((0.25 + 0.1 * engagement).clamp(0.05, 0.9));
        let age_effect = -0.0012 * (age - 34.0).powi(2);
        // Browsing depth matters with diminishing returns; very long visits without many pages
        // signal hesitation; recent spending helps less than a habit of buying.
        let hesitation = if pages > 0 { (time_on_site / pages as f64 - 1.5).max(0.0) } else { 0.0 };
        let logit = -4.0
            + 0.75 * (pages as f64).ln_1p()
            + 0.55 * (past_purchases as f64).ln_1p()
            + 0.12 * spending.ln_1p()
            + age_effect
            + region_effect
            + device_effect
            + if newsletter { 0.55 } else { 0.0 }
            - 0.8 * hesitation
            + 0.35 * engagement
            + 0.7 * rng.normal();
        let purchased = rng.uniform() < 1.0 / (1.0 + (-logit).exp());
        writeln!(
            out,
            "C{id:05},{age},{region},{device},{sessions},{pages},{time_on_site:.2},{past_purchases},{spending:.2},{},{}",
            if newsletter { "yes" } else { "no" },
            if purchased { "yes" } else { "no" },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_file_and_another_seed_differs() {
        assert_eq!(customers_csv(50, 1), customers_csv(50, 1));
        assert_ne!(customers_csv(50, 1), customers_csv(50, 2));
        assert_eq!(customers_csv(50, 1).lines().count(), 51);
    }
}
