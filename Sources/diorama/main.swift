import DioramaCLI

DioramaCommand.runMain()
