using System.Runtime.InteropServices;
using ReaperProxy.Probe.Cli;

// Ctrl-C or SIGTERM once: stop the checks and print what they learned (exit 130). Ctrl-C twice: quit at once.
using var interrupt = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (!interrupt.IsCancellationRequested)
    {
        e.Cancel = true;
        Console.Error.WriteLine("interrupted: stopping the checks and reporting what they learned (Ctrl-C again quits at once)");
        interrupt.Cancel();
    }
};
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    interrupt.Cancel();
});

return await ProbeApp.RunAsync(args, ProbeConsole.System, interrupt.Token);
