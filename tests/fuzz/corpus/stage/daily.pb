
$6f1c2b9e-3a4d-4e5f-8a7b-1c2d3e4f5a6b130102001001"
2026-12-01(0€À®ÈŠ›‘@€À®ÈŠ›‘JclerkRxð¬Xr
hb_grid_checks