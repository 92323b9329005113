"""Readers for public PHM data sets (SKAB, CWRU, C-MAPSS, Loghub, magnetic tile, ...)."""
