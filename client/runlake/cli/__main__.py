from runlake.cli.app import main

main()
