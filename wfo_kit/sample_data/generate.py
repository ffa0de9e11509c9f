"""Generate the bundled sample data set (deterministic: same seed, same bytes).

Run ``python -m wfo_kit.sample_data.generate`` to rewrite the CSV files beside this script. The
companies are fictional. Money is in millions of each row's currency; shares in millions; rates
and margins are decimals. Years: 2023-2025 actuals, 2026-2030 forecasts.

Deliberately bad rows (validation must quarantine them while the rest is valued; see README.md
in this folder):

* companies: ``C012`` appears twice (second row "Harbor Logistics (dup)"): both rows quarantined;
* companies: ``C027`` has a negative diluted share count (-150.0);
* companies: ``C033`` has terminal growth 0.12 above its 0.09 discount rate;
* financials: ``C038`` year 2028 has a missing EBIT.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = 20261126
HERE = Path(__file__).parent
ACTUAL_YEARS = (2023, 2024, 2025)
FORECAST_YEARS = (2026, 2027, 2028, 2029, 2030)

# sector: (growth, ebitda margin, d&a % revenue, capex % revenue, nwc % of revenue change,
#          discount rate, terminal growth, beta, EV/EBITDA centre)
SECTORS = {
    "Software": (0.12, 0.30, 0.04, 0.05, 0.10, 0.095, 0.025, 1.25, 18.0),
    "Industrials": (0.05, 0.16, 0.04, 0.05, 0.15, 0.085, 0.020, 1.05, 10.5),
    "Consumer Staples": (0.03, 0.18, 0.03, 0.035, 0.08, 0.075, 0.020, 0.70, 12.5),
    "Healthcare": (0.07, 0.24, 0.04, 0.045, 0.12, 0.080, 0.022, 0.85, 14.0),
    "Utilities": (0.025, 0.35, 0.10, 0.12, 0.05, 0.065, 0.018, 0.55, 9.0),
    "Energy": (0.02, 0.28, 0.09, 0.10, 0.06, 0.090, 0.015, 1.15, 6.5),
}

FIRST = [
    "Northwind",
    "Bluepeak",
    "Harbor",
    "Crescent",
    "Ironvale",
    "Silverline",
    "Oakridge",
    "Redstone",
    "Clearwater",
    "Summit",
    "Granite",
    "Meridian",
    "Lumen",
    "Westbrook",
    "Kestrel",
    "Aurora",
    "Copperfield",
    "Sterling",
    "Pinecrest",
    "Brightwater",
]
SECOND = {
    "Software": ["Analytics", "Cloud", "Systems", "Data"],
    "Industrials": ["Logistics", "Machinery", "Components", "Engineering"],
    "Consumer Staples": ["Foods", "Brands", "Household", "Beverages"],
    "Healthcare": ["Therapeutics", "Diagnostics", "Medical", "Health"],
    "Utilities": ["Power", "Water", "Grid", "Energy Networks"],
    "Energy": ["Petroleum", "Resources", "Gas", "Offshore"],
}


def _r(x: float, digits: int = 2) -> float:
    return round(float(x), digits)


def build(seed: int = SEED) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    price_rng = np.random.default_rng(seed + 1)  # separate stream: prices do not shift other values
    sectors = list(SECTORS)
    companies, financials, balance_sheet = [], [], []
    for i in range(40):
        cid = f"C{i + 1:03d}"
        sector = sectors[i % len(sectors)]
        growth, margin, da, capex, nwc, rate, g, beta, multiple = SECTORS[sector]
        name = f"{FIRST[i % len(FIRST)]} {SECOND[sector][(i // len(sectors)) % 4]}"
        revenue0 = float(np.exp(rng.uniform(np.log(300), np.log(15000))))
        company_growth = growth + rng.normal(0, 0.015)
        company_margin = margin + rng.normal(0, 0.03)
        tax = _r(rng.uniform(0.19, 0.30), 3)
        revenue = revenue0
        prev_revenue = revenue0 / (1 + company_growth)
        for year in ACTUAL_YEARS + FORECAST_YEARS:
            fade = 0.0 if year <= 2025 else (year - 2025) * 0.004
            year_growth = company_growth - fade + (rng.normal(0, 0.01) if year <= 2025 else 0)
            if year > ACTUAL_YEARS[0]:
                prev_revenue, revenue = revenue, revenue * (1 + year_growth)
            ebitda = revenue * company_margin
            if year == ACTUAL_YEARS[-1]:
                last_actual_ebitda = ebitda
            dep = revenue * da
            ebit = ebitda - dep
            interest = revenue * 0.01
            financials.append(
                {
                    "company_id": cid,
                    "year": year,
                    "is_forecast": year in FORECAST_YEARS,
                    "revenue": _r(revenue),
                    "ebitda": _r(ebitda),
                    "ebit": _r(ebit),
                    "depreciation": _r(dep),
                    "capex": _r(revenue * capex),
                    "change_nwc": _r((revenue - prev_revenue) * nwc),
                    "net_income": _r((ebit - interest) * (1 - tax)),
                }
            )
        debt = revenue0 * rng.uniform(0.1, 0.8)
        cash = revenue0 * rng.uniform(0.03, 0.25)
        shares = _r(revenue0 * rng.uniform(0.02, 0.08), 3)
        market_ev = last_actual_ebitda * multiple * price_rng.lognormal(0.0, 0.2)
        price = _r(max(market_ev - debt + cash, 0.1 * market_ev) / shares)
        companies.append(
            {
                "company_id": cid,
                "name": name,
                "sector": sector,
                "currency": "EUR" if i % 7 == 3 else "USD",
                "shares_diluted": shares,
                "debt": _r(debt),
                "cash": _r(cash),
                "minority_interest": _r(revenue0 * 0.02) if i % 5 == 0 else 0.0,
                "preferred_equity": _r(revenue0 * 0.03) if i % 9 == 0 else 0.0,
                "non_operating_assets": _r(revenue0 * rng.uniform(0, 0.05)),
                "tax_rate": tax,
                "beta": _r(beta + rng.normal(0, 0.1), 3),
                "discount_rate": _r(rate + rng.normal(0, 0.006), 4),
                "terminal_growth": g,
                "share_price": price,
            }
        )
        balance_sheet += _balance_sheet(cid, revenue0, debt, cash, rng)

    # The deliberately bad rows (documented in the module docstring and README.md).
    dup = dict(
        companies[11],
        name="Harbor Logistics (dup)",
        shares_diluted=_r(companies[11]["shares_diluted"] * 2, 3),
    )
    companies.append(dup)
    companies[26]["shares_diluted"] = -150.0
    companies[32]["discount_rate"] = 0.09
    companies[32]["terminal_growth"] = 0.12
    for row in financials:
        if row["company_id"] == "C038" and row["year"] == 2028:
            row["ebit"] = None

    return {
        "companies": companies,
        "financials": financials,
        "peers": _peers(rng),
        "balance_sheet": balance_sheet,
    }


def _balance_sheet(cid: str, revenue: float, debt: float, cash: float, rng) -> list[dict]:
    # (item, side, asset class, book / revenue, fair-value adjustment share, recovery, priority)
    items = [
        ("Cash and equivalents", "asset", "cash", cash / revenue, 0.0, 1.00, None),
        ("Trade receivables", "asset", "receivables", 0.16, -0.02, 0.80, None),
        ("Inventory", "asset", "inventory", 0.12, -0.05, 0.50, None),
        ("Machinery and equipment", "asset", "machinery", 0.45, -0.10, 0.70, None),
        ("Land and buildings", "asset", "real_estate", 0.40, 0.25, 0.90, None),
        ("Goodwill", "asset", "intangible", 0.15, -1.0, 0.00, None),
        ("Secured bank debt", "liability", None, debt / revenue * 0.6, 0.0, None, "secured"),
        ("Bonds", "liability", None, debt / revenue * 0.4, 0.0, None, "unsecured"),
        ("Trade payables", "liability", None, 0.12, 0.0, None, "unsecured"),
    ]
    rows = []
    for item, side, asset_class, share, adj, recovery, priority in items:
        book = (
            revenue
            * share
            * (1 + rng.normal(0, 0.05) if asset_class != "cash" and side == "asset" else 1)
        )
        adjustment = book * adj
        rows.append(
            {
                "company_id": cid,
                "item": item,
                "side": side,
                "asset_class": asset_class,
                "book_value": _r(book),
                "fair_value_adjustment": _r(adjustment),
                "recovery_rate": recovery,
                "priority": priority,
            }
        )
    return rows


def _peers(rng) -> list[dict]:
    rows = []
    n = 0
    for sector, params in SECTORS.items():
        _, margin, *_, multiple = params
        for j in range(6):
            n += 1
            revenue = float(np.exp(rng.uniform(np.log(500), np.log(40000))))
            ebitda = revenue * (margin + rng.normal(0, 0.03))
            if j == 5 and sector == "Energy":
                ebitda = (
                    -abs(ebitda) * 0.1
                )  # a loss-making peer: excluded from EV/EBITDA with a reason
            ebit = ebitda - revenue * 0.05
            ev = abs(revenue * (margin) * multiple * (1 + rng.normal(0, 0.15)))
            debt = ev * rng.uniform(0.1, 0.35)
            net_income = ebit * 0.75 - debt * 0.05
            rows.append(
                {
                    "peer_id": f"P{n:03d}",
                    "name": f"{FIRST[(n * 7) % len(FIRST)]} {SECOND[sector][j % 4]} Peer",
                    "sector": sector,
                    "enterprise_value": _r(ev),
                    "market_cap": _r(ev - debt),
                    "revenue": _r(revenue),
                    "ebitda": _r(ebitda),
                    "ebit": _r(ebit),
                    "net_income": _r(net_income),
                }
            )
    return rows


def write(tables: dict[str, list[dict]], folder: Path = HERE) -> None:
    for name, rows in tables.items():
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {
                        k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v)
                        for k, v in row.items()
                    }
                )


if __name__ == "__main__":
    write(build())
