import DioramaCLI

DioramaCommand.main()
