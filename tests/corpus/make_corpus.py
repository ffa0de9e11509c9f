"""Write the bad-input corpus (python tests/corpus/make_corpus.py); tests/test_corpus.py runs it.

Each case is a folder with a ``params.yaml``, the broken file(s) it names (the other tables are
the bundled sample) and ``expected.json``: either the exact one-line error of ``wfo validate``
(exit 2), or the quarantine rows it must produce (exit 0; ``table`` names the table when no row is
expected), optionally with ``valuations`` rows (company, method, status, reason) that a load,
validate and value run must give. ``{dir}`` stands for the case folder; ``"confine": true``
runs ``wfo validate --confine <case folder>``.
``SQLITE:`` is a SQLite database with one table ``other``, ``DUCKDB:`` an empty DuckDB database.
A file whose content is ``SYMLINK:target`` is written as a symbolic link to ``target``; a
``params.yaml`` given as bytes is written as they are (binary, UTF-16).
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path

import polars as pl

HERE = Path(__file__).parent
SAMPLE = "../../../wfo_kit/sample_data"
COMPANY_HEADER = (
    "company_id,name,sector,currency,shares_diluted,debt,cash,minority_interest,"
    "preferred_equity,non_operating_assets,tax_rate,beta,discount_rate,terminal_growth"
)
GOOD_COMPANY = "C001,Good Co,Software,USD,100,50,20,0,0,0,0.25,1.1,0.09,0.02"
FIN_HEADER = (
    "company_id,year,is_forecast,revenue,ebitda,ebit,depreciation,capex,change_nwc,net_income"
)
GOOD_FIN = "C001,2026,true,1000,300,250,50,60,10,180"
BS_HEADER = (
    "company_id,item,side,asset_class,book_value,fair_value_adjustment,recovery_rate,priority"
)


def parquet(csv_text: str, **casts: pl.DataType) -> bytes:
    """A Parquet file holding the CSV text, with the given column types."""
    frame = pl.read_csv(io.StringIO(csv_text)).with_columns(
        pl.col(name).cast(dtype) for name, dtype in casts.items()
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def params(**tables: str) -> str:
    lines = ["data:"]
    for name in ("companies", "financials", "peers", "balance_sheet"):
        lines.append(f"  {name}: {tables.get(name, f'{SAMPLE}/{name}.csv')}")
    return "\n".join(lines) + "\n"


SQL_HINT = (
    "a SQL source runs one SELECT on its own database: no other statement, no other file, "
    "extension, setting or secret"
)


def error(line: str) -> dict:
    return {"exit": 2, "stderr": line}


def refused(url: str, reason: str) -> dict:
    """The one line of a SQL query refused on the companies table (exit 2)."""
    return error(
        f"wfo: error: companies: query refused for SQL source {url}: {reason} (hint: {SQL_HINT})"
    )


def confined(line: str) -> dict:
    """The one-line error of `wfo validate --confine <case folder>`."""
    return {**error(line), "confine": True}


def quarantined(*rows: list) -> dict:
    return {"exit": 0, "quarantine": [list(r) for r in rows]}


def alias_bomb() -> str:
    """Nine levels of nine aliases: 9**9 values once expanded, in under 700 bytes."""
    text = "a: &a {" + ", ".join(f"k{j}: lol" for j in range(9)) + "}\n"
    for name, prev in zip("bcdefghi", "abcdefgh", strict=True):
        text += f"{name}: &{name} {{" + ", ".join(f"k{j}: *{prev}" for j in range(9)) + "}\n"
    return text + "report: *i\n"


def extends_chain(length: int) -> dict[str, str | bytes]:
    return {f"c{i}.yaml": f"extends: c{i + 1}.yaml\n" for i in range(1, length)} | {
        f"c{length}.yaml": params()
    }


# name -> (files {name: text or bytes}, params text or bytes, expected)
CASES: dict[str, tuple[dict[str, str | bytes], str | bytes, dict]] = {
    "missing-file": (
        {},
        params(companies="nope.csv"),
        error(
            "wfo: error: companies: file not found: {dir}/nope.csv "
            "(hint: check `data.companies` in the parameters file)"
        ),
    ),
    "empty-file": (
        {"c.csv": ""},
        params(companies="c.csv"),
        error("wfo: error: companies: file is empty: {dir}/c.csv (hint: a CSV needs a header row)"),
    ),
    "semicolon-delimited": (
        {"c.csv": COMPANY_HEADER.replace(",", ";") + "\n"},
        params(companies="c.csv"),
        error(
            "wfo: error: companies: {dir}/c.csv looks ';'-delimited; "
            "comma-separated is expected (hint: export the file as CSV "
            "with commas)"
        ),
    ),
    "tab-delimited": (
        {"c.csv": COMPANY_HEADER.replace(",", "\t") + "\n"},
        params(companies="c.csv"),
        error(
            "wfo: error: companies: {dir}/c.csv looks 'tab'-delimited; "
            "comma-separated is expected (hint: export the file as CSV with "
            "commas)"
        ),
    ),
    "latin1-bytes": (
        {
            "c.csv": (
                COMPANY_HEADER + "\nC001,Caf\xe9 SA,Food,EUR,1,0,0,0,0,0,0.2,1,0.08,0.02\n"
            ).encode("latin-1")
        },
        params(companies="c.csv"),
        error(
            "wfo: error: companies: {dir}/c.csv is not UTF-8 text (undecodable "
            "byte at line 2) (hint: save the file as UTF-8)"
        ),
    ),
    "missing-columns": (
        {"c.csv": "company_id,name\nC001,X\n"},
        params(companies="c.csv"),
        error(
            "wfo: error: companies: {dir}/c.csv lacks required column(s) sector, "
            "currency, shares_diluted, debt, cash, tax_rate"
        ),
    ),
    "column-typo": (
        {"c.csv": COMPANY_HEADER.replace("shares_diluted", "shares_dilluted") + "\n"},
        params(companies="c.csv"),
        error(
            "wfo: error: companies: {dir}/c.csv lacks required column(s) "
            "shares_diluted (close names found: 'shares_diluted' -> "
            "'shares_dilluted'?)"
        ),
    ),
    "decimal-comma": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN.replace("1000", '"1000,5"') + "\n"},
        params(financials="f.csv"),
        error(
            "wfo: error: financials: {dir}/f.csv: column 'revenue' cannot be read "
            "as Float64: '1000,5' at row 1"
        ),
    ),
    "bad-boolean": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN.replace("true", "maybe") + "\n"},
        params(financials="f.csv"),
        error(
            "wfo: error: financials: {dir}/f.csv: column 'is_forecast' cannot be "
            "read as Boolean: 'maybe' at row 1"
        ),
    ),
    "bad-year": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN + "\n" + GOOD_FIN.replace("2026", "20x7") + "\n"},
        params(financials="f.csv"),
        error(
            "wfo: error: financials: {dir}/f.csv: column 'year' cannot be read as "
            "Int64: '20x7' at row 2"
        ),
    ),
    "excel-file": (
        {"c.xlsx": b"PK\x03\x04"},
        params(companies="c.xlsx"),
        error(
            "wfo: error: companies: unsupported file type '.xlsx' for {dir}/c.xlsx "
            "(hint: use .csv or .parquet, or a SQL `url`)"
        ),
    ),
    "corrupt-parquet": (
        {"c.parquet": b"PAR1 this is not parquet"},
        params(companies="c.parquet"),
        error("PREFIX:wfo: error: companies: cannot read Parquet file {dir}/c.parquet:"),
    ),
    "sqlite-missing-db": (
        {},
        params(companies="{url: sqlite:///nope.db, table: companies}"),
        error("wfo: error: companies: SQLite database not found: {dir}/nope.db"),
    ),
    "sqlite-missing-table": (
        {"db.sqlite": "SQLITE:"},
        params(companies="{url: sqlite:///db.sqlite, table: companies}"),
        error(
            "wfo: error: companies: SQL source sqlite:///{dir}/db.sqlite failed: "
            "no such table: companies"
        ),
    ),
    # SQL sources run one SELECT on their own database and reach no other file (issue 11
    # item 1); "DUCKDB:" is a copy of empty.duckdb, an empty DuckDB database. A refused
    # statement names files relative to the working directory: none may exist after the run.
    "duckdb-copy-to": (
        {"db.duckdb": "DUCKDB:"},
        params(
            companies="""{url: duckdb:///db.duckdb, query: "COPY (SELECT 'x') TO 'copied.csv'"}"""
        ),
        refused("duckdb:///{dir}/db.duckdb", "COPY is not a SELECT statement"),
    ),
    "duckdb-read-csv-outside": (
        {"db.duckdb": "DUCKDB:"},
        params(
            companies="""{url: duckdb:///db.duckdb, query: "SELECT * FROM read_csv('/etc/hostname')"}"""
        ),
        refused(
            "duckdb:///{dir}/db.duckdb",
            "it reads or writes outside its database (file system access is disabled)",
        ),
    ),
    "duckdb-read-parquet-outside": (
        {"db.duckdb": "DUCKDB:", "outside.parquet": parquet("company_id\nC001\n")},
        params(
            companies="""{url: duckdb:///db.duckdb, query: "SELECT * FROM read_parquet('outside.parquet')"}"""
        ),
        refused(
            "duckdb:///{dir}/db.duckdb",
            "it reads or writes outside its database (file system access is disabled)",
        ),
    ),
    "duckdb-read-text-outside": (
        {"db.duckdb": "DUCKDB:"},
        params(
            companies="""{url: duckdb:///db.duckdb, query: "SELECT * FROM read_text('/etc/passwd')"}"""
        ),
        refused(
            "duckdb:///{dir}/db.duckdb",
            "it reads or writes outside its database (file system access is disabled)",
        ),
    ),
    "duckdb-attach": (
        {"db.duckdb": "DUCKDB:"},
        params(
            companies="""{url: duckdb:///db.duckdb, query: "ATTACH 'attached.duckdb' AS other"}"""
        ),
        refused("duckdb:///{dir}/db.duckdb", "ATTACH is not a SELECT statement"),
    ),
    "duckdb-install": (
        {"db.duckdb": "DUCKDB:"},
        params(companies="{url: duckdb:///db.duckdb, query: INSTALL httpfs}"),
        refused("duckdb:///{dir}/db.duckdb", "INSTALL/LOAD is not a SELECT statement"),
    ),
    "duckdb-load": (
        {"db.duckdb": "DUCKDB:"},
        params(companies="{url: duckdb:///db.duckdb, query: LOAD httpfs}"),
        refused("duckdb:///{dir}/db.duckdb", "INSTALL/LOAD is not a SELECT statement"),
    ),
    "duckdb-set": (
        {"db.duckdb": "DUCKDB:"},
        params(companies="{url: duckdb:///db.duckdb, query: SET enable_external_access = true}"),
        refused("duckdb:///{dir}/db.duckdb", "SET is not a SELECT statement"),
    ),
    "duckdb-pragma": (
        {"db.duckdb": "DUCKDB:"},
        params(companies="{url: duckdb:///db.duckdb, query: PRAGMA enable_profiling}"),
        refused("duckdb:///{dir}/db.duckdb", "PRAGMA is not a SELECT statement"),
    ),
    "duckdb-create-secret": (
        {"db.duckdb": "DUCKDB:"},
        params(
            companies="""{url: duckdb:///db.duckdb, query: "CREATE SECRET s (TYPE s3, KEY_ID '${S3_KEY_ID}', SECRET '${S3_SECRET}')"}"""
        ),
        refused("duckdb:///{dir}/db.duckdb", "CREATE is not a SELECT statement"),
    ),
    "duckdb-several-statements": (
        {"db.duckdb": "DUCKDB:"},
        params(companies='{url: duckdb:///db.duckdb, query: "SELECT 1; DROP TABLE x"}'),
        refused("duckdb:///{dir}/db.duckdb", "2 statements, not one SELECT"),
    ),
    "duckdb-hostile-table-name": (
        {"db.duckdb": "DUCKDB:"},
        params(companies="""{url: duckdb:///db.duckdb, table: 'x"; DROP TABLE y; --'}"""),
        error(
            "PREFIX:wfo: error: companies: SQL source duckdb:///{dir}/db.duckdb failed: "
            'Catalog Error: Table with name x"; DROP TABLE y; -- does not exist!'
        ),
    ),
    "sqlite-attach": (
        {"db.sqlite": "SQLITE:"},
        params(
            companies="""{url: sqlite:///db.sqlite, query: "ATTACH DATABASE 'attached.db' AS other"}"""
        ),
        refused("sqlite:///{dir}/db.sqlite", "ATTACH is not a read (attached.db)"),
    ),
    "sqlite-pragma-write": (
        {"db.sqlite": "SQLITE:"},
        params(companies="{url: sqlite:///db.sqlite, query: PRAGMA journal_mode = WAL}"),
        refused("sqlite:///{dir}/db.sqlite", "PRAGMA is not a read (journal_mode)"),
    ),
    "sqlite-several-statements": (
        {"db.sqlite": "SQLITE:"},
        params(
            companies='{url: sqlite:///db.sqlite, query: "SELECT * FROM other; DROP TABLE other"}'
        ),
        refused("sqlite:///{dir}/db.sqlite", "several statements, not one SELECT"),
    ),
    "sqlite-hostile-table-name": (
        {"db.sqlite": "SQLITE:"},
        params(companies="""{url: sqlite:///db.sqlite, table: 'x"; DROP TABLE other; --'}"""),
        error(
            "wfo: error: companies: SQL source sqlite:///{dir}/db.sqlite failed: "
            'no such table: x"; DROP TABLE other; --'
        ),
    ),
    "unknown-config-key": (
        {},
        params() + "valuation:\n  terminal_growht: 0.02\n",
        error(
            "PREFIX:wfo: error: unknown configuration key 'valuation.terminal_growht' "
            "(did you mean 'terminal_growth'?) (hint: known keys here: "
        ),
    ),
    "yaml-syntax": (
        {},
        "data: [unclosed\n",
        error("PREFIX:wfo: error: cannot parse parameters file {dir}/params.yaml: "),
    ),
    "yaml-python-tag": (
        {},
        "report:\n  title: !!python/object/apply:os.system ['true']\n",
        error(
            "PREFIX:wfo: error: cannot parse parameters file {dir}/params.yaml: "
            "could not determine a constructor for the tag"
        ),
    ),
    "params-not-mapping": (
        {},
        "- a\n- b\n",
        error(
            "wfo: error: parameters file {dir}/params.yaml must hold a mapping "
            "of sections, not list"
        ),
    ),
    "blend-weights": (
        {},
        params() + "valuation:\n  blend: {dcf: 0.6, comparables: 0.6}\n",
        error(
            "wfo: error: invalid configuration value at valuation: Value error, "
            "blend weights must sum to 1, got 1.2"
        ),
    ),
    "unknown-method": (
        {},
        params() + "valuation:\n  methods: [dcf, multiples]\n",
        error(
            "wfo: error: unknown name 'multiples' at valuation.methods.1 (hint: "
            "known names: dcf, comparables, asset, ddm, fcfe, dated)"
        ),
    ),
    "scenario-probabilities": (
        {},
        params() + "valuation:\n  scenarios:\n"
        "    - {name: a, probability: 0.5}\n    - {name: b, probability: 0.2}\n",
        error(
            "wfo: error: invalid configuration value at valuation: Value "
            "error, scenario probabilities must sum to 1, got 0.7"
        ),
    ),
    "unknown-step": (
        {},
        params() + "pipeline:\n  steps: [load, valdate]\n",
        error(
            "wfo: error: unknown step 'valdate' in pipeline.steps (did you mean "
            "'validate'?) (hint: known steps: load, load_fallback, validate, value, "
            "output)"
        ),
    ),
    "bad-date": (
        {},
        params() + "valuation:\n  valuation_date: 2026-02-30\n",
        error(
            "wfo: error: cannot parse parameters file {dir}/params.yaml: day is out of "
            "range for month (hint: only plain YAML/JSON is accepted)"
        ),
    ),
    "duplicate-company": (
        {"c.csv": "\n".join([COMPANY_HEADER, GOOD_COMPANY, GOOD_COMPANY]) + "\n"},
        params(companies="c.csv"),
        quarantined(
            ["companies", 1, "unique", "company_id 'C001' is not unique (rows 1, 2)"],
            ["companies", 2, "unique", "company_id 'C001' is not unique (rows 1, 2)"],
        ),
    ),
    "negative-shares": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace(",100,", ",-5,") + "\n"},
        params(companies="c.csv"),
        quarantined(["companies", 1, "greater_than", "shares_diluted must be > 0, got -5.0"]),
    ),
    "tax-rate-above-one": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace(",0.25,", ",1.2,") + "\n"},
        params(companies="c.csv"),
        quarantined(["companies", 1, "less_than", "tax_rate must be < 1, got 1.2"]),
    ),
    "nan-value": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace(",50,", ",NaN,") + "\n"},
        params(companies="c.csv"),
        quarantined(
            ["companies", 1, "finite", "debt must be a finite number, got NaN"],
            ["companies", 1, "not_null", "debt is NaN, not a number"],
        ),
    ),
    "infinite-value": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace(",20,", ",inf,") + "\n"},
        params(companies="c.csv"),
        quarantined(["companies", 1, "finite", "cash must be a finite number, got inf"]),
    ),
    "lowercase-currency": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace("USD", "usd") + "\n"},
        params(companies="c.csv"),
        quarantined(["companies", 1, "str_matches", "currency must match '^[A-Z]{3}$', got 'usd'"]),
    ),
    "growth-above-rate": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace("0.09,0.02", "0.03,0.05") + "\n"},
        params(companies="c.csv"),
        # not a bad row: the Gordon DCF alone excludes the company, the other methods value it
        {
            "exit": 0,
            "table": "companies",
            "quarantine": [],
            "valuations": [
                ["C001", "dcf", "excluded", "discount rate 0.03 must exceed terminal growth 0.05"],
                ["C001", "comparables", "valued", None],
                ["C001", "asset", "valued", None],
            ],
        },
    ),
    "missing-company-name": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace("Good Co", "") + "\n"},
        params(companies="c.csv"),
        quarantined(["companies", 1, "not_null", "name is missing"]),
    ),
    "forecast-missing-ebit": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN.replace(",250,", ",,") + "\n"},
        params(financials="f.csv"),
        quarantined(
            [
                "financials",
                1,
                "fcff_inputs",
                "forecast row needs fcff, or ebit, depreciation, capex and change_nwc (missing: ebit)",
            ]
        ),
    ),
    "unknown-company": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN.replace("C001", "Z999") + "\n"},
        params(financials="f.csv"),
        quarantined(
            ["financials", 1, "known_company", "company_id Z999 is not in the companies table"]
        ),
    ),
    "duplicate-year": (
        {"f.csv": "\n".join([FIN_HEADER, GOOD_FIN, GOOD_FIN]) + "\n"},
        params(financials="f.csv"),
        quarantined(
            [
                "financials",
                1,
                "unique_company_year",
                "company C001 has more than one row for year 2026",
            ],
            [
                "financials",
                2,
                "unique_company_year",
                "company C001 has more than one row for year 2026",
            ],
        ),
    ),
    "negative-revenue": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN.replace(",1000,", ",-1000,") + "\n"},
        params(financials="f.csv"),
        quarantined(
            ["financials", 1, "greater_than_or_equal_to", "revenue must be >= 0, got -1000.0"]
        ),
    ),
    "negative-capex": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN.replace(",60,", ",-60,") + "\n"},
        params(financials="f.csv"),
        quarantined(["financials", 1, "sign", "capex is a positive outflow; enter 60, not -60"]),
    ),
    "negative-liability": (
        {"b.csv": BS_HEADER + "\nC001,Loan,liability,,-40,0,,secured\n"},
        params(balance_sheet="b.csv"),
        quarantined(
            [
                "balance_sheet",
                1,
                "sign",
                "book_value of a liability is a positive claim; enter 40, not -40",
            ]
        ),
    ),
    "duplicate-header": (
        {"c.csv": COMPANY_HEADER + ",name\n" + GOOD_COMPANY + ",Other name\n"},
        params(companies="c.csv"),
        error(
            "wfo: error: companies: {dir}/c.csv has column 'name' more than once (columns 2 "
            "and 15) (hint: every column name must be unique: rename or remove the extra column)"
        ),
    ),
    "fractional-year-parquet": (
        {
            "f.parquet": parquet(
                FIN_HEADER + "\n" + GOOD_FIN + "\n" + GOOD_FIN.replace("2026", "2027.5") + "\n",
                year=pl.Float64,
            )
        },
        params(financials="f.parquet"),
        quarantined(["financials", 2, "whole_number", "year must be a whole number, got 2027.5"]),
    ),
    "fractional-year-csv": (
        {"f.csv": FIN_HEADER + "\n" + GOOD_FIN + "\n" + GOOD_FIN.replace("2026", "2027.5") + "\n"},
        params(financials="f.csv"),
        quarantined(["financials", 2, "whole_number", "year must be a whole number, got 2027.5"]),
    ),
    "blank-company-name": (
        {"c.csv": COMPANY_HEADER + "\n" + GOOD_COMPANY.replace("Good Co", "   ") + "\n"},
        params(companies="c.csv"),
        quarantined(["companies", 1, "not_blank", "name is empty or only whitespace"]),
    ),
    "blank-peer-sector": (
        {
            "p.csv": "peer_id,name,sector,enterprise_value,market_cap,revenue,ebitda,ebit,net_income\n"
            'P1,Peer," ",50,40,10,5,4,3\n'
        },
        params(peers="p.csv"),
        quarantined(["peers", 1, "not_blank", "sector is empty or only whitespace"]),
    ),
    "balance-sheet-side": (
        {"b.csv": BS_HEADER + "\nC001,Shares,equity,,10,0,,\n"},
        params(balance_sheet="b.csv"),
        quarantined(
            ["balance_sheet", 1, "isin", "side must be one of ['asset', 'liability'], got 'equity'"]
        ),
    ),
    "balance-sheet-reconcile": (
        {"b.csv": BS_HEADER + ",adjusted_value\nC001,Land,asset,real_estate,100,5,0.9,,110\n"},
        params(balance_sheet="b.csv"),
        quarantined(
            [
                "balance_sheet",
                1,
                "reconciles",
                "book value 100.0 + adjustment 5.0 = 105.0 does not reconcile with the stated adjusted value 110.0 (tolerance 0.01)",
            ]
        ),
    ),
    "liability-without-priority": (
        {"b.csv": BS_HEADER + "\nC001,Loan,liability,,40,0,,\n"},
        params(balance_sheet="b.csv"),
        quarantined(
            [
                "balance_sheet",
                1,
                "liability_priority",
                "a liability needs a priority (administrative, secured or unsecured)",
            ]
        ),
    ),
    "recovery-above-one": (
        {"b.csv": BS_HEADER + "\nC001,Stock,asset,inventory,10,0,1.5,\n"},
        params(balance_sheet="b.csv"),
        quarantined(
            ["balance_sheet", 1, "less_than_or_equal_to", "recovery_rate must be <= 1, got 1.5"]
        ),
    ),
    "params-binary": (
        {},
        bytes(range(256)) * 4,
        error(
            "wfo: error: parameters file {dir}/params.yaml is not UTF-8 text (undecodable byte "
            "at line 2) (hint: save the file as UTF-8 text)"
        ),
    ),
    "params-random-bytes": (
        {},
        bytes((i * 131 + 7) % 256 for i in range(3000)),
        error(
            "wfo: error: parameters file {dir}/params.yaml is not UTF-8 text (undecodable byte "
            "at line 1) (hint: save the file as UTF-8 text)"
        ),
    ),
    "params-utf16": (
        {},
        params().encode("utf-16"),
        error(
            "wfo: error: parameters file {dir}/params.yaml is UTF-16 text, not UTF-8 "
            "(hint: save the file as UTF-8 text)"
        ),
    ),
    "params-deep-yaml": (
        {},
        params() + "report:\n  masked_columns: " + "[" * 5000 + "]" * 5000 + "\n",
        error(
            "wfo: error: parameters file {dir}/params.yaml is nested more than 50 levels deep "
            "(line 7) (hint: settings need a few levels of nesting; at most 50 are read)"
        ),
    ),
    "params-deep-json": (
        {"deep.json": '{"report": {"masked_columns": ' + "[" * 10_000 + "]" * 10_000 + "}}"},
        "extends: deep.json\n",
        error(
            "wfo: error: parameters file {dir}/deep.json is nested more than 50 levels deep "
            "(line 1) (hint: settings need a few levels of nesting; at most 50 are read)"
        ),
    ),
    "params-extends-chain": (
        extends_chain(25),
        "extends: c1.yaml\n",
        error(
            "wfo: error: `extends:` chain longer than 20 files, starting at {dir}/params.yaml "
            "(hint: merge some of the files: at most 20 are read in one chain)"
        ),
    ),
    "params-alias-bomb": (
        {},
        params() + alias_bomb(),
        error(
            "wfo: error: parameters file {dir}/params.yaml expands to more than 10000 values "
            "(YAML aliases repeat what they name) (hint: a YAML alias bomb? write the settings "
            "out plainly)"
        ),
    ),
    "data-symlink-loop": (
        {"loop.csv": "SYMLINK:loop.csv"},
        params(peers="loop.csv"),
        error("PREFIX:wfo: error: data.peers: cannot resolve {dir}/loop.csv: symbolic link loop"),
    ),
    # Confinement (`wfo validate --confine <case folder>`): every path stays inside the folder.
    "confine-extends-system-file": (
        {},
        "extends: /etc/passwd\n",
        confined(
            "wfo: error: extends in params.yaml: '/etc/passwd' is an absolute path, refused in "
            "confinement to {dir} (hint: write paths relative to the parameters file, inside the "
            "confinement folder)"
        ),
    ),
    "confine-extends-dotdot": (
        {},
        "extends: ../../../parameters/default.yaml\n",
        confined(
            "wfo: error: extends in params.yaml: '../../../parameters/default.yaml' is a path "
            "through `..`, refused in confinement to {dir} (hint: write paths relative to the "
            "parameters file, inside the confinement folder)"
        ),
    ),
    "confine-data-system-file": (
        {},
        "data:\n  companies: /etc/hostname\n",
        confined(
            "wfo: error: data.companies: '/etc/hostname' is an absolute path, refused in "
            "confinement to {dir} (hint: write paths relative to the parameters file, inside the "
            "confinement folder)"
        ),
    ),
    "confine-data-dotdot": (
        {},
        "data:\n  companies: ../../../wfo_kit/sample_data/companies.csv\n",
        confined(
            "wfo: error: data.companies: '../../../wfo_kit/sample_data/companies.csv' is a path "
            "through `..`, refused in confinement to {dir} (hint: write paths relative to the "
            "parameters file, inside the confinement folder)"
        ),
    ),
    "confine-data-link-out": (
        {"escape.csv": "SYMLINK:/etc/hostname"},
        "data:\n  companies: escape.csv\n",
        confined(
            "PREFIX:wfo: error: data.companies: /etc/hostname is outside the confinement folder "
            "{dir}"
        ),
    ),
    "confine-notebook-outside": (
        {},
        "report:\n  notebook: /usr/share/evil.ipynb\n",
        confined(
            "wfo: error: report.notebook: '/usr/share/evil.ipynb' is an absolute path, refused in "
            "confinement to {dir} (hint: write paths relative to the parameters file, inside the "
            "confinement folder)"
        ),
    ),
    "duplicate-key-yaml": (
        {},
        params() + "valuation:\n  discount_rate: 0.08\n  timing: mid_year\n  discount_rate: 0.12\n",
        error(
            "wfo: error: parameters file {dir}/params.yaml: duplicate key 'discount_rate' "
            "(lines 7 and 9) (hint: keep one of them: otherwise the last would silently win)"
        ),
    ),
    "duplicate-key-json": (
        {"p.json": '{\n  "report": {\n    "title": "a",\n    "title": "b"\n  }\n}\n'},
        params() + "extends: p.json\n",
        error(
            "wfo: error: parameters file {dir}/p.json: duplicate key 'title' (lines 3 and 4) "
            "(hint: keep one of them: otherwise the last would silently win)"
        ),
    ),
    "config-nan-blend-weight": (
        {},
        params() + "valuation:\n  blend: {dcf: .nan, comparables: 0.5, asset: 0.5}\n",
        error(
            "wfo: error: invalid configuration value at valuation.blend.dcf: Input should be a "
            "finite number"
        ),
    ),
    "config-inf-scenario-scale": (
        {},
        params()
        + "valuation:\n  scenarios:\n    - {name: a, probability: 1, cash_flow_scale: .inf}\n",
        error(
            "wfo: error: invalid configuration value at valuation.scenarios.0.cash_flow_scale: "
            "Input should be a finite number"
        ),
    ),
    "config-inf-exit-multiple": (
        {},
        params() + "valuation:\n  terminal: exit_multiple\n  exit_multiple: .inf\n",
        error(
            "wfo: error: invalid configuration value at valuation.exit_multiple: Input should be "
            "a finite number"
        ),
    ),
    "config-nan-risk-free": (
        {},
        params() + "valuation:\n  rate_source: wacc\n  wacc: {risk_free: .nan}\n",
        error(
            "wfo: error: invalid configuration value at valuation.wacc.risk_free: Input should "
            "be a finite number"
        ),
    ),
    "config-negative-simulation-scale": (
        {},
        params()
        + "valuation:\n  monte_carlo:\n"
        + "    discount_rate_shift: {dist: norm, params: {loc: 0, scale: -0.01}}\n",
        error(
            "wfo: error: invalid configuration value at "
            "valuation.monte_carlo.discount_rate_shift: Value error, norm scale must be > 0, "
            "got -0.01"
        ),
    ),
    "config-rate-out-of-range": (
        {},
        params() + "valuation:\n  wacc: {risk_free: 4}\n",
        error(
            "wfo: error: invalid configuration value at valuation.wacc.risk_free: Input should "
            "be less than or equal to 0.5"
        ),
    ),
    "fiscal-year-end-02-30": (
        {},
        params() + "valuation:\n  fiscal_year_end: '02-30'\n",
        error(
            "wfo: error: invalid configuration value at valuation.fiscal_year_end: Value error, "
            "fiscal_year_end '02-30' is not a day of the year (MM-DD)"
        ),
    ),
    "fiscal-year-end-02-29": (
        {},
        params() + "valuation:\n  fiscal_year_end: '02-29'\n",
        error(
            "wfo: error: invalid configuration value at valuation.fiscal_year_end: Value error, "
            "fiscal_year_end 02-29 does not exist in three years of four: write 02-28 for a "
            "year that ends on the last day of February"
        ),
    ),
    "peer-negative-ev": (
        {
            "p.csv": "peer_id,name,sector,enterprise_value,market_cap,revenue,ebitda,ebit,net_income\n"
            "P1,Peer,Software,-5,10,1,1,1,1\n"
        },
        params(peers="p.csv"),
        quarantined(["peers", 1, "greater_than", "enterprise_value must be > 0, got -5.0"]),
    ),
}


def empty_duckdb() -> Path:
    """An empty DuckDB database kept beside the cases (DuckDB writes a new one differently each
    time: copying one keeps the corpus byte-stable when it is regenerated)."""
    template = HERE / "empty.duckdb"
    if not template.exists():
        import duckdb

        duckdb.connect(str(template)).close()
    return template


def write() -> None:
    for old in HERE.iterdir():
        if old.is_dir():
            shutil.rmtree(old)
    for name, (files, params_text, expected) in CASES.items():
        folder = HERE / name
        folder.mkdir()
        for file_name, content in files.items():
            if content == "DUCKDB:":
                shutil.copyfile(empty_duckdb(), folder / file_name)
                continue
            if content == "SQLITE:":
                with sqlite3.connect(folder / file_name) as conn:
                    conn.execute("CREATE TABLE other (x INTEGER)")
                continue
            target = folder / file_name
            if isinstance(content, str) and content.startswith("SYMLINK:"):
                target.symlink_to(content.removeprefix("SYMLINK:"))
                continue
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        if isinstance(params_text, bytes):
            (folder / "params.yaml").write_bytes(params_text)
        else:
            (folder / "params.yaml").write_text(params_text, encoding="utf-8")
        (folder / "expected.json").write_text(
            json.dumps(expected, indent=2) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    write()
