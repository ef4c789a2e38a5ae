"""``tspo export INDEX --out OUT``: a ``tspo index`` output as the files evaluation harnesses read."""

from __future__ import annotations

import argparse
import sys

from ._common import EXPORT_FORMATS

NAME = "export"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="convert a `tspo index` output for evaluation harnesses",
        description=(
            "Convert the JSONL written by `tspo index` into the frame-index JSON the TSPO reference evaluation "
            "read (a list of annotation entries with `frame_idx`), or a plain {id: indices} map."
        ),
    )
    p.add_argument("index", help="the JSONL file written by `tspo index`")
    p.add_argument("--out", required=True, help="output JSON file")
    p.add_argument("--format", dest="export_format", default="frame-index-json", choices=EXPORT_FORMATS,
                   help="frame-index-json (default; the reference's LMMSJSON file) or id-map")
    p.add_argument("--annotations", default=None, metavar="JSON",
                   help="benchmark annotation list to add frame_idx to (default: the indexed rows themselves)")
    p.add_argument("--key-field", default="id",
                   help="annotation field matching the index ids (default: id; VideoMME/MLVU: question_id)")
    p.add_argument("--allow-errors", action="store_true",
                   help="export despite error records (empty frame_idx / left out of id-map)")
    p.add_argument("--allow-unmatched", action="store_true",
                   help="keep annotation entries without an index record instead of failing")
    return p


def run(args: argparse.Namespace) -> int:
    from ..export import export_index
    from ..io import check_writable

    check_writable(args.out)  # before reading anything; nothing is created until the export is complete
    n = export_index(args.index, args.out, format=args.export_format, annotations=args.annotations,
                     key_field=args.key_field, allow_errors=args.allow_errors, allow_unmatched=args.allow_unmatched)
    print(f"tspo export: {n} entries written to {args.out} ({args.export_format})", file=sys.stderr)
    return 0
