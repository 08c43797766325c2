/// <reference path="./parse-prometheus-text-format.d.ts" />
import parse, { type Family } from "parse-prometheus-text-format"

/** A parsed metric family (name, help, type and its samples). */
export type PrometheusFamily = Family

/**
 * Parses Prometheus text with an independent parser (the npm package
 * `parse-prometheus-text-format`), so tests of `/metrics` check the format,
 * not our own idea of it.
 */
export const parsePrometheus = (text: string): Array<PrometheusFamily> => parse(text)
