"""Banking: linked bank accounts (Plaid, Teller), balances, transactions and transfers."""
