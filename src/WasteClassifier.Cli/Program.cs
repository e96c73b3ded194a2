using WasteClassifier.Cli;
using WasteClassifier.Cli.Commands;

// Add a verb: implement ICommand under Commands/ and list it here.
ICommand[] commands = [new TrainCommand(), new EvaluateCommand(), new MigrateCommand(), new ModelsImportCommand(), new KeysHashCommand(), new KeysNewCommand(), new LoadTestCommand(), new IngestCommand()];
return CommandDispatcher.Run(commands, args);
