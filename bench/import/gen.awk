# gen.awk - a reproducible order CSV: n lines, 1 to 7 lines per order
# (4 on average), fixed seed; order ids carry a tag so a re-run imports new
# orders. Usage: awk -v n=1000000 -v seed=42 -v tag=run1 -f gen.awk
BEGIN {
    srand(seed);
    print "order_id,customer_id,customer_email,sku,qty,unit_price,placed_at";
    line = 0; order = 0;
    while (line < n) {
        order++;
        lines = 1 + int(rand() * 7);
        cust = int(rand() * 5000);
        day = 1 + int(rand() * 28);
        for (l = 0; l < lines && line < n; l++) {
            line++;
            printf "B-%s-%07d,C-%04d,c%04d@example.com,SKU-%03d,%d,%d.%02d,2026-11-%02dT12:00:00Z\n",
                   tag, order, cust, cust, int(rand() * 200), 1 + int(rand() * 5),
                   1 + int(rand() * 300), int(rand() * 100), day;
        }
    }
}
