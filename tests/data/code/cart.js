#!/usr/bin/env node
/**
 * Shopping cart helpers.
 * @module cart
 */
'use strict';

// Prices are kept in cents to avoid floating-point surprises.
const TAX_RATE = 0.2; // 20 %

/* Build an empty cart. */
function createCart(owner) {
  return { owner, lines: [], note: "// not a comment", pattern: /\/\/+/g };
}

/**
 * Add a product to the cart.
 * @param {object} cart
 * @param {string} sku
 * @param {number} cents
 */
function addLine(cart, sku, cents, quantity = 1) {
  const existing = cart.lines.find((line) => line.sku === sku);
  if (existing) {
    existing.quantity += quantity; // merge duplicates
  } else {
    cart.lines.push({ sku, cents, quantity });
  }
  return cart;
}

function total(cart) {
  const net = cart.lines.reduce((sum, l) => sum + l.cents * l.quantity, 0);
  return Math.round(net * (1 + TAX_RATE));
}

const summary = (cart) => `${cart.owner}: ${cart.lines.length} lines /* template, not a comment */`;

module.exports = { createCart, addLine, total, summary };
