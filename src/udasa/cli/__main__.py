from udasa.cli import main

main()
