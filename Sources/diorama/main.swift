import DioramaCLI
DioramaCommand.main()
