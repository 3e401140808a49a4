"""The demo data set: three chains with four stores each and sixty items, as plain rows.

Only data: ``core.seeding.load_demo`` turns it into chains, stores, items and levels.
"""

from __future__ import annotations

from dataclasses import dataclass

from commerce.core.models import NewChain


@dataclass(frozen=True, slots=True)
class DemoStore:
    """A demo store before its chain exists (the chain's id is known only once created)."""

    name: str
    phone: str
    address: str
    postal_code: str
    city: str
    country: str
    active: bool = True


# Phone numbers are from ranges reserved for fiction (555-01xx in North America), or
# made up in the local format elsewhere.
DEMO_CHAINS: tuple[tuple[NewChain, tuple[DemoStore, ...]], ...] = (
    (
        NewChain(name="Northwind Grocers", phone="+1 206-555-0100"),
        (
            DemoStore(
                "Northwind Pike Place", "+1 206-555-0111", "1501 Pike Pl", "98101", "Seattle", "US"
            ),
            DemoStore(
                "Northwind Pearl District",
                "+1 503-555-0122",
                "1120 NW Couch St",
                "97209",
                "Portland",
                "US",
            ),
            DemoStore(
                "Northwind Mission",
                "+1 415-555-0133",
                "2301 Mission St",
                "94110",
                "San Francisco",
                "US",
            ),
            DemoStore(
                "Northwind LoDo", "+1 303-555-0144", "1701 Wynkoop St", "80202", "Denver", "US"
            ),
        ),
    ),
    (
        NewChain(name="Maple & Birch Hardware", phone="+1 416-555-0150"),
        (
            DemoStore(
                "Maple & Birch King West",
                "+1 416-555-0161",
                "620 King St W",
                "M5V 1M6",
                "Toronto",
                "CA",
            ),
            DemoStore(
                "Maple & Birch Gastown",
                "+1 604-555-0172",
                "12 Water St",
                "V6B 1A4",
                "Vancouver",
                "CA",
            ),
            DemoStore(
                "Maple & Birch Plateau",
                "+1 514-555-0183",
                "4380 Boul. Saint-Laurent",
                "H2W 1Z5",
                "Montréal",
                "CA",
            ),
            # Closed for a refit: its stock was moved out, so its levels are mostly zero.
            DemoStore(
                "Maple & Birch Beltline",
                "+1 403-555-0194",
                "1122 17 Ave SW",
                "T2T 0B4",
                "Calgary",
                "CA",
                active=False,
            ),
        ),
    ),
    (
        NewChain(name="Alpenhof Markt", phone="+49 89 2180 4400"),
        (
            DemoStore(
                "Alpenhof Viktualienmarkt",
                "+49 89 2180 4411",
                "Frauenstraße 12",
                "80469",
                "München",
                "DE",
            ),
            DemoStore(
                "Alpenhof Mitte",
                "+49 30 2045 3822",
                "Rosenthaler Straße 40",
                "10178",
                "Berlin",
                "DE",
            ),
            DemoStore(
                "Alpenhof Naschmarkt",
                "+43 1 586 2233",
                "Linke Wienzeile 18",
                "1060",
                "Wien",
                "AT",
            ),
            DemoStore(
                "Alpenhof Langstrasse",
                "+41 44 241 6655",
                "Langstrasse 94",
                "8004",
                "Zürich",
                "CH",
            ),
        ),
    ),
)

DEMO_ITEMS: tuple[tuple[str, str, str], ...] = (
    # Groceries
    ("GRO-1001", "Arabica coffee beans, 1 kg", "18.90"),
    ("GRO-1002", "Earl Grey tea, 50 bags", "4.25"),
    ("GRO-1003", "Rolled oats, 1 kg", "2.79"),
    ("GRO-1004", "Extra virgin olive oil, 750 ml", "9.40"),
    ("GRO-1005", "Basmati rice, 2 kg", "5.60"),
    ("GRO-1006", "Spaghetti no. 5, 500 g", "1.35"),
    ("GRO-1007", "Crushed tomatoes, 400 g can", "0.95"),
    ("GRO-1008", "Wildflower honey, 500 g", "7.80"),
    ("GRO-1009", "Dark chocolate 70%, 100 g", "2.15"),
    ("GRO-1010", "Sea salt flakes, 250 g", "3.50"),
    ("GRO-1011", "Maple syrup, grade A, 375 ml", "11.25"),
    ("GRO-1012", "Peanut butter, crunchy, 500 g", "3.95"),
    ("GRO-1013", "Sourdough crispbread, 200 g", "2.40"),
    ("GRO-1014", "Black beans, 400 g can", "1.10"),
    ("GRO-1015", "Sparkling mineral water, 6 x 1 l", "4.80"),
    ("GRO-1016", "Apple juice, not from concentrate, 1 l", "2.30"),
    ("GRO-1017", "Muesli with nuts, 750 g", "4.60"),
    ("GRO-1018", "Aged cheddar, 200 g", "5.75"),
    ("GRO-1019", "Greek yoghurt, 500 g", "2.95"),
    ("GRO-1020", "Free-range eggs, dozen", "4.10"),
    # Household
    ("HSH-2001", "Laundry detergent, 2 l", "8.50"),
    ("HSH-2002", "Dish soap, lemon, 750 ml", "2.25"),
    ("HSH-2003", "Paper towels, 6 rolls", "6.90"),
    ("HSH-2004", "Toilet paper, 12 rolls", "7.95"),
    ("HSH-2005", "Compostable bin bags, 30 l, 20 pack", "4.45"),
    ("HSH-2006", "Microfibre cloths, 5 pack", "5.20"),
    ("HSH-2007", "Beeswax food wraps, 3 pack", "12.50"),
    ("HSH-2008", "Glass cleaner, 500 ml", "3.15"),
    ("HSH-2009", "Scented candle, cedar, 200 g", "14.00"),
    ("HSH-2010", "AA batteries, 8 pack", "6.75"),
    # Hardware
    ("HDW-3001", "Claw hammer, 16 oz", "17.95"),
    ("HDW-3002", "Screwdriver set, 8 pieces", "21.50"),
    ("HDW-3003", "Cordless drill, 18 V", "89.00"),
    ("HDW-3004", "Wood screws, 4 x 40 mm, 200 pack", "7.35"),
    ("HDW-3005", "Wall plugs, 6 mm, 100 pack", "3.60"),
    ("HDW-3006", "Measuring tape, 5 m", "9.95"),
    ("HDW-3007", "Spirit level, 60 cm", "15.40"),
    ("HDW-3008", "Masking tape, 25 mm x 50 m", "3.25"),
    ("HDW-3009", "Interior paint, white matt, 2.5 l", "34.90"),
    ("HDW-3010", "Paint roller kit, 23 cm", "12.80"),
    ("HDW-3011", "Sandpaper assortment, 10 sheets", "5.45"),
    ("HDW-3012", "Adjustable wrench, 250 mm", "13.70"),
    ("HDW-3013", "Utility knife with 10 blades", "8.20"),
    ("HDW-3014", "Work gloves, size L", "6.30"),
    ("HDW-3015", "Extension cord, 3 outlets, 5 m", "16.50"),
    ("HDW-3016", "LED bulb, E27, 806 lm", "3.99"),
    ("HDW-3017", "Silicone sealant, clear, 300 ml", "7.10"),
    ("HDW-3018", "Step ladder, 3 steps", "42.00"),
    # Garden
    ("GDN-4001", "Potting soil, 40 l", "8.95"),
    ("GDN-4002", "Garden hose, 20 m", "27.50"),
    ("GDN-4003", "Pruning shears", "19.90"),
    ("GDN-4004", "Tomato seeds, heirloom mix", "2.85"),
    ("GDN-4005", "Terracotta pot, 30 cm", "11.40"),
    ("GDN-4006", "Watering can, 10 l", "13.25"),
    ("GDN-4007", "Bird seed, 2 kg", "6.60"),
    ("GDN-4008", "Slow-release fertiliser, 1 kg", "9.15"),
    # Personal care
    ("PRC-5001", "Bar soap, oatmeal, 100 g", "2.50"),
    ("PRC-5002", "Toothpaste, fluoride, 75 ml", "2.95"),
    ("PRC-5003", "Sunscreen SPF 50, 200 ml", "12.75"),
    ("PRC-5004", "Shampoo, unscented, 400 ml", "5.90"),
)
