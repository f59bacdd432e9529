from fabricscope.cli.app import main

main()
