// Small page-wide behaviour. The CSRF header for htmx comes from hx-headers:inherited on <body>.
document.addEventListener('click', (event) => {
  const flash = document.getElementById('flash');
  if (flash && flash.contains(event.target)) flash.innerHTML = '';
});
