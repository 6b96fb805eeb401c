from fieldsync.cli import main

main()
