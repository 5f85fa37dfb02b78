/*
 * Copyright (c) 2024 Example Books Ltd.
 * Licensed under the Apache License, Version 2.0.
 */
package com.example.books;

import java.util.ArrayList;
import java.util.List;

/**
 * A minimal double-entry ledger.
 */
public final class Ledger {
    private final List<Entry> entries = new ArrayList<>();

    /** One booking: amount in cents, positive for credit. */
    public record Entry(String account, long cents, String memo) {}

    // Books an entry and returns this ledger for chaining.
    public Ledger book(String account, long cents, String memo) {
        entries.add(new Entry(account, cents, memo));
        return this;
    }

    public long balance(String account) {
        long sum = 0;
        for (Entry e : entries) {
            if (e.account().equals(account)) {
                sum += e.cents(); // no overflow check: amounts are small
            }
        }
        return sum;
    }

    public static void main(String[] args) {
        Ledger l = new Ledger().book("cash", 1000, "opening /* not a comment */");
        char slash = '/';
        System.out.println(l.balance("cash") + " " + slash); // prints 1000 /
    }
}
