#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Inventory bookkeeping for a small shop.

Reads stock levels from a CSV file and reports the items that need reordering.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass


@dataclass
class Item:
    """One stock-keeping unit."""

    sku: str
    name: str
    quantity: int
    reorder_level: int = 5  # below this we order more

    def needs_reorder(self) -> bool:
        """True when the shelf is almost empty."""
        return self.quantity < self.reorder_level


async def fetch_prices(skus):
    """Async functions keep their docstring out of the reference's comment count."""
    return {sku: 0.0 for sku in skus}


def load(path: str) -> list[Item]:
    # The file has a header row: sku,name,quantity,reorder_level
    items = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            items.append(
                Item(
                    sku=row["sku"],
                    name=row["name"],  # free text, may contain "#" like "Bolt #4"
                    quantity=int(row["quantity"]),
                    reorder_level=int(row.get("reorder_level") or 5),
                )
            )
    return items


def main(argv: list[str]) -> int:
    """Print the items to reorder, one per line.

    Exit status 0 even when nothing needs reordering.
    """
    for item in load(argv[1]):
        if item.needs_reorder():
            print(f"{item.sku}\t{item.name}\t# left: {item.quantity}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
