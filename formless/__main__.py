from formless.cli import main

main()
