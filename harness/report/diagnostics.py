"""The report's findings about codecs apart from their RD points, read from the store's
``diagnostics`` table: the thread matrix of ``harness verify --cross`` (portability) and
the complexity profiles of ``harness profile --store``.

Both are :class:`~harness.report.tables.Table` s (Markdown, CSV, LaTeX and a sortable
HTML table in one section); the portability section also shows each matrix.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from harness.report.tables import Column, Table, to_html

SECTION_ID = "diagnostics"


def complexity_table(records: Sequence[dict]) -> Table:
    """One row per profile (codec, quality, size, device, threads): the paper-style
    complexity columns."""
    rows = []
    for record in records:
        p = record["document"]
        memory = p.get("peak_memory_mib", {})
        rows.append({
            "codec": p["codec"], "quality": p.get("quality", record["quality"]),
            "size": f"{p['height']}x{p['width']}", "device": p["device"],
            "threads": p["threads"], "params_m": p["parameters"] / 1e6,
            "kmac_forward": p["kmac_per_pixel"]["forward"],
            "kmac_encode": p["kmac_per_pixel"]["encode"],
            "kmac_decode": p["kmac_per_pixel"]["decode"],
            "encode_s": p["seconds"]["encode"], "decode_s": p["seconds"]["decode"],
            "encode_mib": memory.get("encode"), "decode_mib": memory.get("decode"),
            "weights": p["weights"], "measured": record["measured"]})
    columns = (Column("codec", "codec"), Column("quality", "q", 0), Column("size", "H x W"),
               Column("device", "device"), Column("threads", "threads", 0),
               Column("params_m", "params (M)", 2), Column("kmac_forward", "kMAC/px", 1),
               Column("kmac_encode", "kMAC/px enc", 1, latex=False),
               Column("kmac_decode", "kMAC/px dec", 1),
               Column("encode_s", "enc s", 3), Column("decode_s", "dec s", 3),
               Column("encode_mib", "enc MiB", 0), Column("decode_mib", "dec MiB", 0),
               Column("weights", "weights", latex=False),
               Column("measured", "measured", latex=False))
    return Table("complexity", "Complexity", pd.DataFrame(rows, columns=[c.key for c in columns]),
                 columns, caption="harness profile: parameters, kMAC per pixel (FLOPs / 2 of"
                 " convolutions, linear layers and matrix products; element-wise operations"
                 " and the range coder not counted), median encode / decode seconds after a"
                 " warm-up, peak memory of a first encode / decode in a fresh process.")


def portability_table(records: Sequence[dict]) -> Table:
    """One row per thread matrix (codec, quality, image): bytes alike across encoders,
    latents alike across decoders, the largest pixel error, the verdict."""
    rows = []
    for record in records:
        m = record["document"]
        errors = [err for _, _, err in m["max_error"]]
        rows.append({
            "codec": record["codec"], "quality": record["quality"],
            "threads": ", ".join(map(str, m["threads"])),
            "bytes": "identical" if m["same_bytes"] else "differ",
            "latents": "differ" if m["latents_differ"] else "identical",
            "max_error": None if None in errors else max(errors, default=0),
            "verdict": "; ".join(m.get("failures", [])) or "portable",
            "machine": f"{m['machine']}, {m['cpus']} CPUs"
                       + (f", {m['gpu']}" if m.get("gpu") else "") + f", torch {m['torch']}",
            "measured": record["measured"]})
    columns = (Column("codec", "codec"), Column("quality", "q", 0),
               Column("threads", "threads"), Column("bytes", "bytes across encoders"),
               Column("latents", "latents across decoders"),
               Column("max_error", "max pixel error", 0), Column("verdict", "verdict"),
               Column("machine", "machine", latex=False),
               Column("measured", "measured", latex=False))
    return Table("portability", "Portability", pd.DataFrame(rows, columns=[c.key for c in columns]),
                 columns, caption="harness verify --cross: bytes written with each thread count"
                 " (and on the GPU, where there is one), each decoded in a fresh process with"
                 " each of them; the pixel error is against the decode at the encoder's own"
                 " setting (1 level allowed: the synthesis transform's rounding).")


def _matrix(record: dict) -> str:
    """One thread matrix as a small HTML table: rows encoders, columns decoders."""
    m = record["document"]
    errors = {(e, d): err for e, d, err in m["max_error"]}
    differ = {tuple(pair) for pair in m["latents_differ"]}
    head = "".join(f"<th>dec {d}</th>" for d in m["threads"])
    body = ""
    for e in m["threads"]:
        cells = "".join(
            f"<td>{'failed' if errors.get((e, d)) is None else errors[(e, d)]}"
            f"{' (latents differ)' if (e, d) in differ else ''}</td>" for d in m["threads"])
        body += f"<tr><th>enc {e}</th>{cells}</tr>"
    title = f"{record['codec']} q={record['quality']:g}"
    return (f"<details><summary>{html.escape(title)}: max pixel error per encoder / decoder"
            f" thread count</summary><table class='matrix'><tr><th></th>{head}</tr>{body}"
            "</table></details>")


def section(complexity: Table | None, portability: Table | None,
            matrices: Sequence[dict]) -> str:
    """The complexity and portability section ('' when the store holds neither)."""
    parts = []
    for table in (complexity, portability):
        if table is not None and not table.frame.empty:
            parts.append(f"<h3>{table.title}</h3><p class='muted'>{html.escape(table.caption)}"
                         f"</p><div class='scroll'>{to_html(table)}</div>")
    if matrices:
        parts.append("".join(_matrix(record) for record in matrices))
    if not parts:
        return ""
    return (f'<section id="{SECTION_ID}"><h2>Codecs: complexity and portability</h2>'
            + "\n".join(parts) + "</section>")
